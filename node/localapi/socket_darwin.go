package localapi

// DefaultSocket is where warrend listens unless told otherwise.
const DefaultSocket = "/var/run/warrend.sock"
