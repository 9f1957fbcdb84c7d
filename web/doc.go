// Package web is the live market dashboard, embedded in the binary with
// go:embed and served at "/": plain HTML, CSS and JavaScript with no build
// step and nothing fetched from outside the machine. The page speaks the
// WebSocket protocol of docs/protocol.md to "/ws".
package web
