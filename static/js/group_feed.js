// An open group page asks for what changed every few seconds. The server answers 304
// while the group's version is the one this page has (If-None-Match), in front of Flask
// and without the database, so hundreds of open pages cost little; when it changed, it
// sends the new posts and replies, rendered, and they are added in place.
(function () {
  "use strict";
  var feed = document.getElementById("feed");
  if (!feed || !window.fetch) return;
  var url = feed.dataset.updates;
  var etag = '"' + feed.dataset.version + '"';
  var after = parseInt(feed.dataset.after, 10) || 0;
  var every = (parseInt(feed.dataset.every, 10) || 3) * 1000;

  function fragment(html) {
    var template = document.createElement("template");
    template.innerHTML = html; // rendered and escaped by the server
    return template.content;
  }

  function add(item) {
    if (document.getElementById("post-" + item.id)) return;
    var empty = document.getElementById("feed-empty");
    if (empty) empty.remove();
    if (item.reply_to) {
      var replies = feed.querySelector('[data-replies-of="' + item.reply_to + '"]');
      if (replies) replies.appendChild(fragment(item.html));
    } else {
      var first = feed.querySelector("article.post:not(.post-announcement)") || null;
      feed.insertBefore(fragment(item.html), first);
    }
    after = Math.max(after, item.id);
  }

  function ask() {
    if (document.hidden) return setTimeout(ask, every);
    fetch(url + "?after=" + after, {
      headers: { "If-None-Match": etag, Accept: "application/json" },
      cache: "no-store",
      credentials: "same-origin",
    })
      .then(function (response) {
        if (response.status === 304) return null;
        if (response.status === 403) { window.location.reload(); return null; }
        if (!response.ok) return null;
        etag = response.headers.get("ETag") || etag;
        return response.json();
      })
      .then(function (data) {
        if (data && data.items) data.items.forEach(add);
      })
      .catch(function () {})
      .then(function () { setTimeout(ask, every); });
  }

  setTimeout(ask, every);
})();
