// Progressive enhancement only: every page works without this file.
// - Copy buttons (hidden until this runs) copy a code block and announce it.
// - Status messages present on load are re-announced; errors and new results get focus.
// - Try it: the form is sent in the background and the answer swapped in, announced.
(function () {
  "use strict";

  function announce(region, text) {
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }

  function setUpCopy(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      var target = document.getElementById(button.getAttribute("data-copy"));
      if (!target) return;
      button.hidden = false;
      var status = button.parentElement.querySelector(".copy-status");
      button.addEventListener("click", function () {
        copyText(target.textContent).then(function () {
          announce(status, "Copied to the clipboard.");
        }, function () {
          var range = document.createRange();
          range.selectNodeContents(target);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          announce(status, "Selected: press Control+C (or Command+C) to copy.");
        });
      });
    });
  }

  function focusFirst(root) {
    var target = root.querySelector("[data-focus]");
    if (target) { target.focus(); }
  }

  function setUpTry() {
    var form = document.getElementById("try-form");
    var region = document.getElementById("try-result");
    if (!form || !region || !window.fetch || !window.FormData || !window.DOMParser) return;
    var status = document.getElementById("try-status");
    var busy = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy) return;  // a double submit sends once (the server would answer once anyway)
      busy = true;
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      announce(status, "Generating alt text…");
      fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { "Accept": "text/html" }
      }).then(function (response) {
        return response.text();
      }).then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var newRegion = page.getElementById("try-result");
        var newForm = page.getElementById("try-form");
        var main = document.getElementById("main");
        var newMain = page.getElementById("main");
        if (!newRegion || !newForm || !newMain) {
          document.open(); document.write(html); document.close();
          return;
        }
        main.innerHTML = newMain.innerHTML;
        document.title = page.title;
        setUpCopy(main);
        setUpTry();
        var result = main.querySelector("#try-result [data-focus], .error-summary");
        if (result) { result.focus(); }
        var done = main.querySelector("#try-status");
        announce(done, result && result.classList.contains("result") ? "Alt text ready." : "");
      }).catch(function () {
        busy = false;
        button.disabled = false;
        announce(status, "The request failed; check your connection and try again.");
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpCopy(document);
    document.querySelectorAll("[data-announce]").forEach(function (el) {
      var text = el.textContent;
      announce(el, text.trim());
    });
    focusFirst(document);
    setUpTry();
  });
}());
