package local

import (
	"bytes"
	"html/template"
	"net/http"
	"time"

	"github.com/warrenmesh/warren/coordinator/login"
)

// cookieName is the SameSite cookie that ties a form submission to a form
// this coordinator served; its path is the login's own URL path.
const cookieName = "warren_local_login"

// maxFormBytes bounds a submitted form.
const maxFormBytes = 16 << 10

// Handler serves the sign-in forms at LoginPath+<id>: GET shows the form,
// POST checks it. Mount it at LoginPath. Pages have no scripts and no
// external assets, are never cached and send no Referer (the URL is a
// secret until used).
func (l *Login) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+LoginPath+"{id}", l.serveForm)
	mux.HandleFunc("POST "+LoginPath+"{id}", l.serveSubmit)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		login.SetPageHeaders(w.Header())
		mux.ServeHTTP(w, r)
	})
}

// page is what the template shows.
type page struct {
	Title   string
	Error   string // shown as an alert
	Message string
	Form    bool
	Action  string // the form's URL path
	User    string // the name typed before, to fill in again
	Machine string // short form of the device's machine key
	Minutes int    // until the link expires
	Console bool   // the sign-in is to the web console, not for a device
}

// formState is a snapshot of a live login for rendering its form.
type formState struct {
	live    bool
	machine string
	cookie  string
	expires time.Time
	console bool
	result  result // when not live
}

func (l *Login) formState(id string) formState {
	var fs formState
	err := l.table.With(id, func(e *login.Entry[form]) error {
		if e.Finished() {
			fs.result = finishedResult(e)
			return nil
		}
		fs = formState{live: true, machine: e.Machine.ShortString(), cookie: e.State.cookie, expires: e.Expires,
			console: e.ForConsole()}
		return nil
	})
	if err != nil {
		fs.result = result{status: http.StatusNotFound, msg: msgUnknownLogin, final: true}
	}
	return fs
}

func (l *Login) serveForm(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	fs := l.formState(id)
	if !fs.live {
		l.render(w, fs.result.status, resultPage(fs.result))
		return
	}
	l.setCookie(w, id, fs)
	l.render(w, http.StatusOK, l.formPage(id, fs, "", ""))
}

func (l *Login) serveSubmit(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		l.render(w, http.StatusBadRequest, page{Title: "Sign-in failed", Error: "The form could not be read; reload the page and try again."})
		return
	}
	cookie := ""
	if c, err := r.Cookie(cookieName); err == nil {
		cookie = c.Value
	}
	res := l.submit(r.Context(), id, cookie, credentials{
		name:     r.PostFormValue("user"),
		password: r.PostFormValue("password"),
		code:     r.PostFormValue("code"),
	}, r.RemoteAddr)
	if res.ok && res.console {
		// A console sign-in: back to the console's fixed path, which
		// collects the outcome and starts the session.
		http.Redirect(w, r, login.ConsoleFinishPath, http.StatusSeeOther)
		return
	}
	if res.final {
		l.render(w, res.status, resultPage(res))
		return
	}
	fs := l.formState(id)
	if !fs.live {
		l.render(w, fs.result.status, resultPage(fs.result))
		return
	}
	l.setCookie(w, id, fs)
	l.render(w, res.status, l.formPage(id, fs, res.msg, r.PostFormValue("user")))
}

func (l *Login) setCookie(w http.ResponseWriter, id string, fs formState) {
	http.SetCookie(w, &http.Cookie{
		Name:     cookieName,
		Value:    fs.cookie,
		Path:     LoginPath + id,
		MaxAge:   max(int(fs.expires.Sub(l.now())/time.Second), 1),
		Secure:   l.secureCookie,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

func (l *Login) formPage(id string, fs formState, errMsg, user string) page {
	if len(user) > maxNameLen {
		user = ""
	}
	return page{
		Title:   "Sign in to Warren",
		Error:   errMsg,
		Form:    true,
		Action:  LoginPath + id,
		User:    user,
		Machine: fs.machine,
		Minutes: max(int(fs.expires.Sub(l.now()).Round(time.Minute)/time.Minute), 1),
		Console: fs.console,
	}
}

func resultPage(r result) page {
	if r.ok {
		return page{Title: "Signed in", Message: r.msg}
	}
	return page{Title: "Sign-in failed", Error: r.msg}
}

// render writes p with status. The page is rendered to a buffer first so a
// template error never sends half a page.
func (l *Login) render(w http.ResponseWriter, status int, p page) {
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		l.log.Error("local login: render page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.Title}} · Warren</title>
<style>
body { font-family: system-ui, sans-serif; background: #f4f5f7; color: #1d232b; margin: 0; }
main { max-width: 26rem; margin: 4rem auto; background: #fff; padding: 2rem; border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
h1 { font-size: 1.4rem; margin-top: 0; }
label { display: block; margin: 1rem 0 .25rem; font-weight: 600; }
input { width: 100%; box-sizing: border-box; padding: .55rem; font-size: 1rem; border: 1px solid #a9b1bc; border-radius: 4px; }
button { margin-top: 1.5rem; width: 100%; padding: .7rem; font-size: 1rem; border: 0; border-radius: 4px; background: #1f5fbf; color: #fff; cursor: pointer; }
.error { background: #fde8e8; border: 1px solid #e3a1a1; padding: .75rem; border-radius: 4px; }
.hint { color: #5b6572; font-size: .9rem; }
code { background: #eef0f3; padding: 0 .25rem; border-radius: 3px; }
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{if .Form}}
{{if .Console}}<p>Sign in to the Warren web console.</p>{{else}}<p>A device (machine key <code>{{.Machine}}</code>) asks to join the mesh as you. Continue only if you started it yourself with <code>warren up</code>.</p>{{end}}
<form method="post" action="{{.Action}}">
<label for="user">User name</label>
<input id="user" name="user" autocomplete="username" maxlength="256" required autofocus value="{{.User}}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<label for="code">Code from your authenticator app</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,7}" maxlength="7" placeholder="123456">
<p class="hint">Leave the code empty if your account has no authenticator app.</p>
<button type="submit">Sign in</button>
</form>
<p class="hint">This link works once and expires in about {{.Minutes}} min.</p>
{{end}}
</main>
</body>
</html>
`))
