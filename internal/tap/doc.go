// Package tap reads the gateway's capture socket (--capture-bind) and prints
// its traffic live, one line a message, for a person debugging a feed: the
// "espresso" pattern of the ZeroMQ guide.
package tap
