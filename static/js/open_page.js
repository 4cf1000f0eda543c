// A one-time sign-in link opens the family's page in one tap: the link's page sends its
// own form at once. Chat apps that fetch the link to preview it run no script, so they
// cannot spend it; without scripts the parent presses the button.
(function () {
  "use strict";
  var form = document.querySelector("form[data-send-at-once]");
  if (form) form.submit();
})();
