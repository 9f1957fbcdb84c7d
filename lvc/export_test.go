package lvc

// SetSaveHook makes every save run h first (a slow disk, for the shutdown
// bound); the returned func removes it.
func SetSaveHook(h func()) (restore func()) {
	saveHook.Store(&h)
	return func() { saveHook.Store(nil) }
}
