// The API reference (swagger-ui), from a file rather than inline: the pages' policy runs no inline script.
// Log in with POST /auth/login, then "Authorize" with the access token: requests send it as a Bearer token.
const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({url: root.dataset.url, dom_id: "#swagger-ui", deepLinking: true,
                            validatorUrl: null});  // validatorUrl: null, so no call to swagger.io
