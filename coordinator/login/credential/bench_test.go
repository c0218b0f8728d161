package credential

import "testing"

// BenchmarkCheckPassword is the cost of one password check (argon2id at
// the production parameters, not the tests' cheap ones), which bounds how
// fast anyone can guess.
func BenchmarkCheckPassword(b *testing.B) {
	phc, err := hashWith("correct horse battery staple", productionParams)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := CheckPassword(phc, "correct horse battery stapler"); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
