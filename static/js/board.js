// The leads board: drag a card to another column to move the lead (SortableJS, vendored in
// static/vendor: HTML5 drag and drop with a mouse, its own pointer handling on touch
// screens, where a long press picks a card up and a swipe still scrolls the board).
//
// A drop sends the card's own form (the one a keyboard or a browser without JavaScript
// uses), with its CSRF token, to the same URL, asking for JSON. The server decides: a
// refusal (an enrolled family, a lost lead without a reason, an expired form) comes back
// with its message, which is shown, and the card goes back where it was. A drop on Lost
// first asks for the reason (the institution's list, in the page's dialog).
(function () {
  "use strict";
  var board = document.querySelector("[data-board]");
  if (!board || typeof window.Sortable === "undefined") return;
  var message = document.querySelector("[data-board-message]");
  var dialog = document.querySelector("[data-lost-dialog]");
  var CLOSED = ["enrolled", "lost"];

  function say(text, ok) {
    message.textContent = text;
    message.className = "flash board-message " + (ok ? "flash-success" : "flash-error");
    message.hidden = false;
  }

  function recount() {
    Array.prototype.forEach.call(board.querySelectorAll(".board-column"), function (column) {
      var n = column.querySelectorAll(".board-card").length;
      column.querySelector("[data-count]").textContent = n;
      column.classList.toggle("is-empty", n === 0);
    });
  }

  function putBack(card, origin) {
    origin.parent.insertBefore(card, origin.next && origin.next.parentNode === origin.parent ? origin.next : null);
    recount();
  }

  function askReason(card) {
    // Resolves with the chosen reason, or null when the dialog is closed without one.
    return new Promise(function (resolve) {
      if (!dialog || typeof dialog.showModal !== "function") return resolve("");
      var select = dialog.querySelector("select");
      select.value = "";
      var name = card.querySelector("a");
      dialog.querySelector("[data-lost-name]").textContent = name ? name.textContent : "";
      dialog.addEventListener(
        "close",
        function () {
          resolve(dialog.returnValue === "move" ? select.value : null);
        },
        { once: true }
      );
      dialog.returnValue = "";
      dialog.showModal();
      select.focus();
    });
  }

  function send(card, stage, reason) {
    var form = card.querySelector("form");
    var data = new FormData(form);
    data.set("stage", stage);
    if (reason) data.set("lost_reason", reason);
    return fetch(form.action, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return { message: board.dataset.failedMessage };
        })
        .then(function (body) {
          return { ok: response.ok, body: body };
        });
    });
  }

  function moved(card, stage) {
    var select = card.querySelector("select[name=stage]");
    if (CLOSED.indexOf(stage) >= 0) {
      // A closed lead moves on from its own page (as the server-drawn board has it).
      card.removeChild(card.querySelector("form"));
      card.classList.remove("is-movable");
    } else if (select) {
      select.value = stage;
    }
  }

  function dropped(event) {
    var card = event.item;
    var origin = card._origin;
    var stage = event.to.closest("[data-stage]").dataset.stage;
    if (event.from === event.to) return;
    card.classList.add("is-saving");
    var reason = stage === "lost" ? askReason(card) : Promise.resolve("");
    reason
      .then(function (chosen) {
        if (chosen === null) return null; // the dialog was cancelled
        return send(card, stage, chosen);
      })
      .then(function (answer) {
        if (answer === null) {
          putBack(card, origin);
        } else if (answer.ok) {
          moved(card, answer.body.stage);
          say(answer.body.message, true);
        } else {
          putBack(card, origin);
          say(answer.body.message || board.dataset.failedMessage, false);
        }
      })
      .catch(function () {
        putBack(card, origin);
        say(board.dataset.failedMessage, false);
      })
      .then(function () {
        card.classList.remove("is-saving");
        recount();
      });
  }

  Array.prototype.forEach.call(board.querySelectorAll("[data-cards]"), function (list) {
    window.Sortable.create(list, {
      group: "leads",
      draggable: ".board-card.is-movable:not(.is-saving)",
      filter: "select, button",
      preventOnFilter: false, // the card's select and button keep working
      sort: false, // a column keeps the server's order (newest first)
      animation: 150,
      delay: 200,
      delayOnTouchOnly: true,
      ghostClass: "is-ghost",
      chosenClass: "is-chosen",
      onStart: function (event) {
        event.item._origin = { parent: event.from, next: event.item.nextElementSibling };
      },
      onEnd: dropped,
    });
  });
})();
