// Adaptive streaming on the post page and /embed/: a <video> with the MP4 as its src and the
// HLS master playlist in data-hls. hls.js (vendored from npm, /static/vendor/hls.min.js) feeds
// it through Media Source Extensions (ManagedMediaSource on iPhones since iOS 17.1); a browser
// without them that plays HLS itself (Safari on older iPhones) gets the playlist as its src;
// without either, or when hls.js gives up, the MP4 plays.
// data-player says which one is playing, for people debugging (and for the browser tests).
// Captions: the page's <track> elements caption the MP4; a ladder's master names the same
// captions as its SUBTITLES group (relay/web/streaming.py), which hls.js (or the browser's own
// HLS) makes text tracks of. Both would show each language twice, so while the playlist plays,
// the <track> elements are set aside, and they come back if the MP4 plays after all.
"use strict";

(function () {
  const setAside = new WeakMap(); // video -> its <track> elements while the playlist captions it

  function takeTracks(video) {
    const tracks = Array.from(video.querySelectorAll("track"));
    tracks.forEach((track) => track.remove());
    setAside.set(video, tracks);
  }

  function restoreTracks(video) {
    (setAside.get(video) || []).forEach((track) => video.appendChild(track));
    setAside.delete(video);
  }

  function fallBack(video, mp4) {
    if (!mp4) return; // a live stream has no MP4 to fall back to: the page's link stays
    restoreTracks(video);
    video.dataset.player = "mp4";
    if (video.getAttribute("src") !== mp4) video.src = mp4;
  }

  function attach(video) {
    const playlist = video.dataset.hls;
    const mp4 = video.getAttribute("src");
    if (!playlist) return;
    video.dataset.mp4 = mp4;
    const Hls = window.Hls;
    if (!Hls || !Hls.isSupported()) {
      // hls.js's own order: Media Source first, the browser's HLS only without it (an older
      // iPhone). Chromium says "maybe" to HLS too, yet plays it only on some systems.
      if (video.canPlayType("application/vnd.apple.mpegurl")) {
        video.dataset.player = "native";
        takeTracks(video);
        video.src = playlist;
        video.addEventListener("error", () => fallBack(video, mp4), { once: true });
      } else if (mp4) {
        video.dataset.player = "mp4";
      }
      return;
    }
    // No worker: the page's CSP allows scripts from 'self' only, not blob: workers.
    const hls = new Hls({ enableWorker: false, capLevelToPlayerSize: true });
    video.dataset.player = "hls.js";
    hls.on(Hls.Events.MANIFEST_PARSED, (_event, data) => {
      video.dataset.levels = String(data.levels.length);
      // A master without the captions (made before them, or a live one): the page's stay.
      if (!(data.subtitleTracks || []).length) restoreTracks(video);
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      video.dataset.hlsError = data.details || "fatal";
      hls.destroy();
      fallBack(video, mp4);
    });
    video.removeAttribute("src");
    takeTracks(video);
    hls.loadSource(playlist);
    hls.attachMedia(video);
  }

  document.querySelectorAll("video[data-hls]").forEach(attach);
})();
