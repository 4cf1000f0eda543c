// A public page served from the cache carries no CSRF token in its forms (app.pagecache):
// one token would tie every visitor to one session, and most visitors never send the
// form. So a form asks the server for its own token when the parent starts filling it
// in, and at the latest when it is sent.
(function () {
  "use strict";
  var inputs = document.querySelectorAll("input[name=csrf_token][data-csrf-from]");
  Array.prototype.forEach.call(inputs, function (input) {
    var form = input.form;
    if (!form) return;
    var pending = null;

    function fetchToken() {
      if (input.value) return Promise.resolve();
      if (!pending) {
        pending = fetch(input.dataset.csrfFrom, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        })
          .then(function (response) {
            return response.json();
          })
          .then(function (data) {
            input.value = data.token;
          })
          .catch(function () {
            pending = null; // offline for a moment: try again on sending
          });
      }
      return pending;
    }

    form.addEventListener("focusin", fetchToken, { once: true });
    form.addEventListener("submit", function (event) {
      if (input.value) return;
      event.preventDefault();
      fetchToken().then(function () {
        if (!input.value) return; // no answer: the parent can press again
        // Sent as the parent sent it (the same button), now with the token.
        if (form.requestSubmit) form.requestSubmit(event.submitter || undefined);
        else form.submit();
      });
    });
  });
})();
