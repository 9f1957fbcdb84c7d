// Package demofeed is a synthetic market-data publisher: a few hundred
// instruments whose prices take a seeded random walk, published as
// [topic, JSON] messages on a libzmq PUB socket, so that `make run` shows a
// live market with no other process.
package demofeed
