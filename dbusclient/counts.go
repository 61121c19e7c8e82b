package dbusclient

import (
	"maps"
	"strings"
	"sync"
)

// callCounts counts the read calls a client sent, by method.
type callCounts struct {
	mu sync.Mutex
	n  map[string]int64
}

func (cc *callCounts) add(calls []*call) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.n == nil {
		cc.n = map[string]int64{}
	}
	for _, cl := range calls {
		cc.n[callName(cl)]++
	}
}

// callName is a call's member name; a Properties.Get also names the
// property ("Get NConnections").
func callName(cl *call) string {
	name := cl.method[strings.LastIndexByte(cl.method, '.')+1:]
	if cl.method == ifaceProps+".Get" && len(cl.args) == 2 {
		if p, ok := cl.args[1].(string); ok {
			name += " " + p
		}
	}
	return name
}

// CallCounts returns how many read calls the client has sent to the
// manager since it was made, by method ("ListUnitsByPatterns",
// "GetUnitProcesses", "Get NConnections", …): what an idle fdtop costs the
// manager, for tools/idle-cost. Jobs and the calls made while connecting
// are not counted.
func (c *Client) CallCounts() map[string]int64 {
	c.byName.mu.Lock()
	defer c.byName.mu.Unlock()
	return maps.Clone(c.byName.n)
}
