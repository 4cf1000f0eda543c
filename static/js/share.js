// Share tools (templates/_share.html share_tools): "Copy link" writes the link to the
// clipboard (or selects it for the parent to copy where the clipboard is refused), and
// "Save poster" shows the page's poster in an overlay: a phone in a chat app's browser
// downloads no files, but a long-press on a picture saves it to the album.
(function () {
  "use strict";
  if (window.cohortShare) return; // the macro may be on a page more than once
  window.cohortShare = true;
  var REF = /^[A-Za-z0-9_-]{1,64}$/;

  // The `ref` of the link this page was opened with (the family who shared it).
  function pageRef() {
    var match = /[?&]ref=([^&#]*)/.exec(window.location.search);
    var ref = match ? decodeURIComponent(match[1].replace(/\+/g, " ")) : "";
    return REF.test(ref) ? ref : "";
  }

  function withPageRef(url, element) {
    if (!element.hasAttribute("data-carry-ref") || /[?&]ref=/.test(url)) return url;
    var ref = pageRef();
    if (!ref) return url;
    return url + (url.indexOf("?") < 0 ? "?" : "&") + "ref=" + encodeURIComponent(ref);
  }

  // --- copy link -------------------------------------------------------------------------

  function say(button, text) {
    var status = button.parentNode.querySelector(".share-copied");
    if (!status) return;
    status.textContent = text;
    clearTimeout(status.cohortTimer);
    status.cohortTimer = setTimeout(function () {
      status.textContent = "";
    }, 2500);
  }

  // Where the clipboard API is missing or refused (an old WebView, a page not on https):
  // copy from a selected field, and leave it selected for a manual copy if that fails too.
  function fallbackCopy(button, text) {
    var field = document.createElement("textarea");
    field.value = text;
    field.setAttribute("readonly", "");
    field.className = "share-copy-field";
    button.parentNode.appendChild(field);
    field.focus();
    field.select();
    field.setSelectionRange(0, text.length);
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    if (copied) {
      field.parentNode.removeChild(field);
      say(button, button.dataset.copied);
    } else {
      field.classList.add("share-copy-field-shown");
      say(button, button.dataset.copyFailed);
    }
  }

  function copy(button) {
    var text = withPageRef(button.dataset.copy, button);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () {
          say(button, button.dataset.copied);
        },
        function () {
          fallbackCopy(button, text);
        }
      );
    } else {
      fallbackCopy(button, text);
    }
  }

  // --- poster overlay ----------------------------------------------------------------------

  var overlay = null;
  var opener = null;

  function close() {
    if (!overlay) return;
    overlay.parentNode.removeChild(overlay);
    overlay = null;
    document.body.classList.remove("has-overlay");
    if (opener) opener.focus();
  }

  function open(button) {
    close();
    opener = button;
    var url = withPageRef(button.dataset.poster, button);
    overlay = document.createElement("div");
    overlay.className = "poster-overlay";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    overlay.setAttribute("aria-label", button.dataset.alt);

    var box = document.createElement("div");
    box.className = "poster-box";
    var image = document.createElement("img");
    image.className = "poster-image";
    image.alt = button.dataset.alt;
    image.width = 750;
    image.height = 1334;
    var hint = document.createElement("p");
    hint.className = "poster-hint";
    hint.textContent = button.dataset.hint;
    var actions = document.createElement("p");
    actions.className = "poster-actions";
    var download = document.createElement("a");
    download.className = "button button-small";
    download.href = url + (url.indexOf("?") < 0 ? "?" : "&") + "download=1";
    download.setAttribute("download", "poster.png");
    download.textContent = button.dataset.download;
    var closer = document.createElement("button");
    closer.type = "button";
    closer.className = "button button-small poster-close";
    closer.textContent = button.dataset.close;
    closer.addEventListener("click", close);
    image.addEventListener("error", function () {
      hint.textContent = button.dataset.failed;
      hint.classList.add("field-error");
    });
    image.src = url;
    actions.appendChild(download);
    actions.appendChild(closer);
    box.appendChild(image);
    box.appendChild(hint);
    box.appendChild(actions);
    overlay.appendChild(box);
    overlay.addEventListener("click", function (event) {
      if (event.target === overlay) close();
    });
    document.body.appendChild(overlay);
    document.body.classList.add("has-overlay");
    closer.focus();
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-copy], [data-poster]") : null;
    if (!target) return;
    event.preventDefault();
    if (target.hasAttribute("data-poster")) open(target);
    else copy(target);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") close();
  });
})();
