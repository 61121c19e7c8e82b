package clierr

import (
	"errors"
	"fmt"
	"testing"
)

func TestOneLine(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"plain", errors.New("boom"), "boom"},
		{"lines", errors.New("two\nlines\n"), "two lines"},
		{"usage", Usage("--speed must be positive"), "--speed must be positive"},
		{"kept raw", errors.New("a\x1b[31mb"), "a\x1b[31mb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OneLine(tt.err); got != tt.want {
				t.Errorf("OneLine(%q) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
	var ue UsageError
	if !errors.As(fmt.Errorf("wrapped: %w", Usage("x")), &ue) || ue.Msg != "x" {
		t.Error("a wrapped UsageError is not found by errors.As")
	}
}
