package main

import (
	"bytes"
	"strconv"
)

// sendTime finds the publisher's send time in an update line.
func sendTime(line []byte) (int64, bool) {
	i := bytes.Index(line, []byte(`"data":{"t":`))
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(`"data":{"t":`):]
	j := bytes.IndexAny(rest, ",}")
	if j <= 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return v, err == nil
}
