// The posts page: posts whose media are still being processed are polled and updated in
// place (status, progress bar, thumbnail), so nobody has to reload. Plain DOM, no library:
// the page works without this file; it only saves the reload.
"use strict";

(function () {
  const list = document.getElementById("posts");
  if (!list) return;
  const label = (key) => list.dataset["label" + key.charAt(0).toUpperCase() + key.slice(1)] || key;
  const INTERVAL_MS = 2000;

  function pending() {
    return Array.from(list.querySelectorAll('li.post[data-status="processing"]'))
      .map((li) => li.dataset.post);
  }

  function updateItem(li, item) {
    if (li.dataset.status === item.status) return;
    li.dataset.status = item.status;
    const status = li.querySelector(".status");
    if (status) status.textContent = label(item.status);
    if (item.status === "ready" || item.status === "failed") {
      const bar = li.querySelector("progress");
      if (bar) bar.remove();
    }
    if (item.error && !li.querySelector(".problem")) {
      const problem = document.createElement("span");
      problem.className = "problem";
      problem.textContent = item.error;
      li.appendChild(problem);
    }
  }

  // An item the page has not shown yet (a mailed post's attachments appear once the message
  // is unpacked): built like the server renders it.
  function newItem(list, item) {
    const li = document.createElement("li");
    li.className = "item";
    li.dataset.item = item.id;
    li.dataset.status = "";
    const name = document.createElement("span");
    name.className = "filename";
    name.textContent = item.filename;
    li.appendChild(name);
    if (item.status === "queued" || item.status === "processing") {
      const bar = document.createElement("progress");
      bar.setAttribute("aria-label", label("progress").replace("%(name)s", item.filename));
      li.appendChild(bar);
    }
    const status = document.createElement("span");
    status.className = "status";
    status.setAttribute("role", "status");
    li.appendChild(status);
    list.appendChild(li);
    return li;
  }

  function updatePost(post) {
    const li = document.getElementById("post-" + post.id);
    if (!li) return;
    const link = li.querySelector("h2 a");
    if (link && post.title && link.textContent !== post.title) link.textContent = post.title;
    let items = li.querySelector("ul.items");
    if (!items && post.items.length > 0) {
      items = document.createElement("ul");
      items.className = "items";
      items.setAttribute("aria-label", label("media"));
      li.querySelector(".state").after(items);
    }
    for (const item of post.items) {
      const itemLi = li.querySelector('li.item[data-item="' + CSS.escape(item.id) + '"]')
        || newItem(items, item);
      updateItem(itemLi, item);
    }
    if (post.thumbnail && !li.querySelector(".thumb img")) {
      const thumb = li.querySelector(".thumb");
      const img = document.createElement("img");
      img.src = post.thumbnail;
      img.alt = "";
      img.width = 96;
      img.height = 96;
      thumb.replaceChildren(img);
    }
    li.dataset.status = post.status;
  }

  async function poll() {
    const ids = pending();
    if (ids.length === 0) return;
    try {
      const response = await fetch("/app/posts.json?ids=" + encodeURIComponent(ids.join(",")), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const body = await response.json();
        body.posts.forEach(updatePost);
      }
    } catch (err) {
      // Offline for a moment: the next round tries again.
    }
    if (pending().length > 0) setTimeout(poll, INTERVAL_MS);
  }

  if (pending().length > 0) setTimeout(poll, INTERVAL_MS);
})();
