package dbusclient

// SetUserRuntimeBase points the /run/user fallback at dir until restore.
func SetUserRuntimeBase(dir string) (restore func()) {
	old := userRuntimeBase
	userRuntimeBase = dir
	return func() { userRuntimeBase = old }
}

// PipelineDials returns how many times a pipeline has dialled its socket.
func PipelineDials() int64 { return pipelineDials.Load() }
