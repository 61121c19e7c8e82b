package dbusclient

// SetUserRuntimeBase points the /run/user fallback at dir until restore.
func SetUserRuntimeBase(dir string) (restore func()) {
	old := userRuntimeBase
	userRuntimeBase = dir
	return func() { userRuntimeBase = old }
}
