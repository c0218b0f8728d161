package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
)

// benchNodes is the mesh size of BenchmarkNodesPage (the issue asks for
// the nodes page of 10,000 nodes in under 200 ms).
const benchNodes = 10_000

// BenchmarkNodesPage renders the first page of the nodes list (server
// side, through the console's handler: session check, the registry's
// node list, filter, sort, page of nodesPageSize, template) for
// benchNodes nodes in a real store and engine. Its baseline, in the same
// run, is the admin API's JSON node list (GET /api/v1/nodes) of the same
// nodes, which reads the same registry list and encodes all of it.
func BenchmarkNodesPage(b *testing.B) {
	nodes := make([]admNode, benchNodes)
	for i := range nodes {
		nodes[i] = admNode{name: fmt.Sprintf("node%05d", i), user: "ann"}
		if i%10 == 0 {
			nodes[i] = admNode{name: fmt.Sprintf("server%05d", i), user: "root", tags: []string{"tag:web"}}
		}
	}
	start := time.Now()
	h := newAdmHarness(b, nodes...)
	b.Logf("%d nodes set up in %v", benchNodes, time.Since(start).Round(time.Millisecond))
	admin := h.as(h.root)
	cookie := &http.Cookie{Name: cookieInsecure, Value: admin.sess.id}

	apiSrv, err := api.New(api.Config{Registry: h.reg, Store: h.st, Audit: h.audit, Policy: h.pol, Engine: h.engine, Access: h.acc})
	if err != nil {
		b.Fatal(err)
	}
	_, apiKey, err := h.reg.CreateAPIKey(h.ctx, admin.actor(), h.root.ID, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		handler http.Handler
		path    string
		auth    func(*http.Request)
		want    string
	}{
		{"baseline-api-json", apiSrv.RemoteHandler(), "/api/v1/nodes", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+apiKey) }, "node09999"},
		{"console-first-page", h.srv.Handler(), "/admin/nodes", func(r *http.Request) { r.AddCookie(cookie) }, "node00099"},
		{"console-filtered", h.srv.Handler(), "/admin/nodes?q=tag:web&page=3", func(r *http.Request) { r.AddCookie(cookie) }, "server02000"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, bc.path, nil)
				bc.auth(req)
				rec := httptest.NewRecorder()
				bc.handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), bc.want) {
					b.Fatalf("GET %s: %d, want 200 with %q", bc.path, rec.Code, bc.want)
				}
			}
		})
	}
}
