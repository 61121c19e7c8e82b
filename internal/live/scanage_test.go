package live

import (
	"context"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// TestLiveSourceSaysWhenItLastScanned: a rescan of a real manager that
// sees the picture unchanged publishes no picture (an idle dashboard
// rebuilds nothing) but says when it saw it, so the header's scan age is
// the last rescan's.
func TestLiveSourceSaysWhenItLastScanned(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		sandboxtest.InstallDemo(t, sb, 10*time.Millisecond)
		src := startLiveSource(t, sb, []string{"demo-*"}, 100*time.Millisecond)
		var pictureAt time.Time
		for {
			select {
			case u := <-src.Updates():
				switch {
				case u.Err != nil:
					t.Fatalf("the model failed: %v", u.Err)
				case u.Snapshot != nil:
					pictureAt = u.At
					continue
				case pictureAt.IsZero():
					t.Fatalf("a rescan said it saw the picture unchanged (%v) before any picture", u.At)
				case !u.At.After(pictureAt):
					t.Fatalf("seen unchanged at %v, not after the picture at %v", u.At, pictureAt)
				}
				if src.Current() == nil {
					t.Fatal("seen unchanged, but the model has no picture")
				}
				return // a rescan after the picture said when it saw it
			case <-ctx.Done():
				t.Fatalf("no rescan said it saw the picture unchanged in 60 s (last picture at %v)", pictureAt)
			}
		}
	})
}
