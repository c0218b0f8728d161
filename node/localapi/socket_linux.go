package localapi

// DefaultSocket is where warrend listens unless told otherwise.
const DefaultSocket = "/run/warren/warrend.sock"
