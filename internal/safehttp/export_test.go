package safehttp

// NewClientWithCheck exposes newClient to the external tests, so that they can
// treat some loopback servers as public and others as private.
var NewClientWithCheck = newClient
