package localapi

// DefaultSocket is the named pipe warrend listens on unless told otherwise.
const DefaultSocket = `\\.\pipe\warrend`
