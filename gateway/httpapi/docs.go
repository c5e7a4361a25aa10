package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The interactive API page, GET /docs: Swagger UI, embedded in the binary, on
// the document of GET /openapi.json. A person picks a photo, sends it to
// /predict with "Try it out" and reads the answer, all without leaving the
// gateway: the page loads nothing from elsewhere, and its
// Content-Security-Policy forbids it to.
//
// docsui/index.html and docsui/docs.js are ours; docsui/swagger-ui/ is vendored
// from the npm package swagger-ui-dist by scripts/fetch-swagger-ui.sh (pinned
// version and checksums; make generate) and must not be edited by hand.

//go:embed docsui/index.html docsui/docs.js docsui/swagger-ui
var docsUI embed.FS

const (
	// docsPagePath is the route of the page; its files are under it.
	docsPagePath = "/docs"
	// docsAssetParam names the file in the route of the page's files.
	docsAssetParam = "asset"

	// docsPageCSP lets the page load scripts, styles and data only from the
	// gateway. Inline scripts and styles stay forbidden (the page's script is
	// docs.js); img-src allows data: for the icons Swagger UI's style sheet
	// embeds as data URLs.
	docsPageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

	// cacheImmutable is the Cache-Control of a file asked for by the address the
	// page gives it, which names its content's hash: it never changes.
	cacheImmutable = "public, max-age=31536000, immutable"
)

// docsFile is one file served under /docs/.
type docsFile struct {
	body        []byte
	contentType string
	// version is the start of the body's sha256 in hex; the page asks for the
	// file as /docs/<name>?v=<version>.
	version string
}

// docsFiles are the files served under /docs/, by name; docsHTML is the page.
var docsFiles, docsHTML = mustLoadDocs()

// mustLoadDocs reads the embedded files and renders the page with their
// versions. The files are compiled in, so a failure is a bug of the build: it
// panics, at start, and every test sees it.
func mustLoadDocs() (map[string]docsFile, []byte) {
	const (
		js   = "text/javascript; charset=utf-8"
		css  = "text/css; charset=utf-8"
		text = "text/plain; charset=utf-8"
	)
	sources := map[string]struct{ file, contentType string }{
		"docs.js":                          {"docsui/docs.js", js},
		"swagger-ui-bundle.js":             {"docsui/swagger-ui/swagger-ui-bundle.js", js},
		"swagger-ui.css":                   {"docsui/swagger-ui/swagger-ui.css", css},
		"swagger-ui-bundle.js.LICENSE.txt": {"docsui/swagger-ui/swagger-ui-bundle.js.LICENSE.txt", text},
		"LICENSE":                          {"docsui/swagger-ui/LICENSE", text},
		"NOTICE":                           {"docsui/swagger-ui/NOTICE", text},
	}
	files := make(map[string]docsFile, len(sources))
	for name, src := range sources {
		body, err := docsUI.ReadFile(src.file)
		if err != nil {
			panic(fmt.Sprintf("httpapi: embedded docs file: %v", err))
		}
		sum := sha256.Sum256(body)
		files[name] = docsFile{body: body, contentType: src.contentType, version: hex.EncodeToString(sum[:8])}
	}

	page, err := template.ParseFS(docsUI, "docsui/index.html")
	if err != nil {
		panic(fmt.Sprintf("httpapi: docs page template: %v", err))
	}
	var out bytes.Buffer
	if err := page.Execute(&out, map[string]string{
		"CSS":    files["swagger-ui.css"].version,
		"Bundle": files["swagger-ui-bundle.js"].version,
		"Init":   files["docs.js"].version,
	}); err != nil {
		panic(fmt.Sprintf("httpapi: docs page template: %v", err))
	}
	return files, out.Bytes()
}

// routeDocs registers the page and its files.
func (s *Server) routeDocs() {
	s.route(docsPagePath, s.docsPage)
	s.route(docsPagePath+"/:"+docsAssetParam, s.docsAsset)
}

// docsPage answers GET /docs: the page, never cached without asking again, so
// that it always names the current versions of its files.
func (s *Server) docsPage(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderContentSecurityPolicy, docsPageCSP)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	return c.Send(docsHTML)
}

// docsAsset answers GET /docs/<file>: one of the page's files, or 404. Asked
// for with its version (as the page does), a file may be cached for a year;
// otherwise the browser must ask again, since the same address may hold
// another version after an upgrade.
func (s *Server) docsAsset(c *fiber.Ctx) error {
	f, ok := docsFiles[c.Params(docsAssetParam)]
	if !ok {
		return fiber.NewError(fiber.StatusNotFound, "no such file under /docs/")
	}
	cache := "no-cache"
	if c.Query("v") == f.version {
		cache = cacheImmutable
	}
	c.Set(fiber.HeaderContentType, f.contentType)
	c.Set(fiber.HeaderCacheControl, cache)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	return c.Send(f.body)
}

// docsPaths describes the page and its files for the OpenAPI document.
func docsPaths(requestID object, withErrors func(ok object, statuses ...int) object) object {
	names := make([]string, 0, len(docsFiles))
	for name := range docsFiles {
		names = append(names, name)
	}
	slices.Sort(names)
	text := object{"type": "string"}
	types := object{}
	for _, name := range names {
		mediaType, _, _ := strings.Cut(docsFiles[name].contentType, ";")
		types[mediaType] = object{"schema": text}
	}
	return object{
		docsPagePath: object{"get": object{
			"operationId": "docs",
			"summary":     "This interactive API page (Swagger UI)",
			"responses": withErrors(object{
				"description": "The page. It loads its files from /docs/ and the document from /openapi.json, and nothing from elsewhere.",
				"headers":     requestID,
				"content":     object{fiber.MIMETextHTML: object{"schema": text}},
			}, getErrors...),
		}},
		path.Join(docsPagePath, "{"+docsAssetParam+"}"): object{"get": object{
			"operationId": "docsAsset",
			"summary":     "A file of the interactive API page: Swagger UI's script and style sheet, and their licenses",
			"parameters": []any{object{
				"name": docsAssetParam, "in": "path", "required": true,
				"schema": object{"type": "string", "enum": names},
			}},
			"responses": func() object {
				r := withErrors(object{"description": "The file.", "headers": requestID, "content": types}, getErrors...)
				r["404"] = object{"description": "No such file.", "headers": requestID, "content": jsonContent("Error")}
				return r
			}(),
		}},
	}
}

// withDocsPaths adds the page's routes to the OpenAPI paths, with the
// document's own builders of headers and error responses.
func withDocsPaths(requestID object, withErrors func(ok object, statuses ...int) object, paths object) object {
	maps.Copy(paths, docsPaths(requestID, withErrors))
	return paths
}
