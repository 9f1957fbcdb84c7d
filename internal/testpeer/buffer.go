package testpeer

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that one goroutine may write while the test
// reads it: a child process's stderr written by exec's copier, or a
// logger's output.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is what was written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
