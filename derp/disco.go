package derp

// discoMagic starts every disco message (node/disco's wire format: the
// magic, then the sender's disco key, a nonce and a sealed box). The relay
// looks at this cleartext prefix only, to give disco its own queue; it
// never opens the box. WireGuard messages start with a type byte 1–4 and
// three zero bytes, so they never carry the magic.
const discoMagic = "wrn\xf0\x9f\x90\x87"

// looksDisco reports whether pkt starts with the disco magic.
func looksDisco(pkt []byte) bool {
	return len(pkt) >= len(discoMagic) && string(pkt[:len(discoMagic)]) == discoMagic
}
