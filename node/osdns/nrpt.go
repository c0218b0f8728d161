package osdns

import "strings"

// nrptKey is the registry key of Warren's NRPT rule, under the local
// rule table (HKLM\SYSTEM\CurrentControlSet\Services\Dnscache\Parameters\
// DnsPolicyConfig; Group Policy's table under Policies overrides it when
// present, and is not Warren's to write).
const (
	nrptBase = `SYSTEM\CurrentControlSet\Services\Dnscache\Parameters\DnsPolicyConfig`
	nrptKey  = nrptBase + `\{6b6e3b9a-57a7-4b9e-9c1d-77617272656e}`
)

// nrptRule is the values of the NRPT rule for cfg: the namespaces
// (".domain") and the servers to send them to.
type nrptRule struct {
	Names   []string // REG_MULTI_SZ "Name"
	Servers string   // REG_SZ "GenericDNSServers", "; "-separated
}

func nrptRuleFor(cfg Config) nrptRule {
	var r nrptRule
	for _, d := range routingDomains(cfg.Domains) {
		r.Names = append(r.Names, "."+d)
	}
	var servers []string
	for _, ns := range cfg.Nameservers {
		servers = append(servers, ns.String())
	}
	r.Servers = strings.Join(servers, "; ")
	return r
}
