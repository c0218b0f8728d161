package recording

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// Handler serves d:
//
//	POST /v1/record            take a recording (Dir.Upload)
//	GET  /v1/recordings        the recordings, a JSON array of Info
//	GET  /v1/recordings/{id}   one recording's cast
//
// auth is called for every request before anything else: an error refuses
// it with 403 and the error's text; for POST its Meta is what is stored
// (the caller decides whether that is the uploader's claim, from
// MetaFromRequest, or its own knowledge of the session).
func Handler(d *Dir, auth func(*http.Request) (Meta, error)) http.Handler {
	mux := http.NewServeMux()
	guard := func(h func(http.ResponseWriter, *http.Request, Meta)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			m, err := auth(r)
			if err != nil {
				refuse(w, "forbidden: "+err.Error(), http.StatusForbidden)
				return
			}
			h(w, r, m)
		}
	}
	mux.Handle("POST /v1/record", guard(d.Upload))
	mux.Handle("GET /v1/recordings", guard(func(w http.ResponseWriter, r *http.Request, _ Meta) {
		list, err := d.List()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if list == nil {
			list = []Info{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(list)
	}))
	mux.Handle("GET /v1/recordings/{id}", guard(func(w http.ResponseWriter, r *http.Request, _ Meta) {
		id := r.PathValue("id")
		in, err := d.Stat(id)
		if err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, ErrNotFound) {
				status = http.StatusNotFound
			}
			http.Error(w, err.Error(), status)
			return
		}
		f, err := d.Open(id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Content-Disposition", `attachment; filename="`+id+castExt+`"`)
		w.Header().Set("Warren-Recording-Complete", strconv.FormatBool(in.Complete))
		io.Copy(w, io.LimitReader(f, in.Size))
	}))
	return mux
}
