// Starts Swagger UI (swagger-ui-bundle.js, loaded just before this file) on the
// gateway's own OpenAPI document. It is a file of its own rather than an inline
// script so that the page's Content-Security-Policy can allow scripts from the
// gateway only (script-src 'self').
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  // The operation open is kept in the address (#/default/predict), so a link
  // can point at one.
  deepLinking: true,
  displayRequestDuration: true,
  // Never send the document to an online validator: the page talks to the
  // gateway and to nothing else.
  validatorUrl: null,
});
