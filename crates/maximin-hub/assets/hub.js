// The hub's one script. Every page works without it; it adds copy buttons,
// confirmations, and submitting a select on change.
"use strict";
document.addEventListener("click", async (ev) => {
  const copy = ev.target.closest("[data-copy]");
  if (copy) {
    const el = document.querySelector(copy.dataset.copy);
    if (!el) return;
    let text = el.innerText.trim();
    if (el.hasAttribute("data-absolute") && text.startsWith("/")) text = location.origin + text;
    try {
      await navigator.clipboard.writeText(text);
      copy.textContent = "Copied";
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents(el);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      copy.textContent = "Selected: press Ctrl+C";
    }
    return;
  }
  const confirmer = ev.target.closest("[data-confirm]");
  if (confirmer && !window.confirm(confirmer.dataset.confirm)) ev.preventDefault();
});
document.addEventListener("change", (ev) => {
  if (ev.target.matches("select[data-autosubmit]")) ev.target.form.submit();
});
document.querySelectorAll("[data-absolute]").forEach((el) => {
  if (el.textContent.startsWith("/")) el.textContent = location.origin + el.textContent;
});

// The playground: send with fetch and show the answer as it arrives (a
// stream's deltas as they come, audio to play, an image), and the curl
// command. Without script the form posts and the page shows the answer.
const pg = document.getElementById("playground");
if (pg) {
  pg.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = document.getElementById("pg-output");
    const curl = document.getElementById("pg-curl");
    const button = pg.querySelector("button[type=submit]");
    out.replaceChildren();
    const text = document.createElement("p");
    text.className = "answer";
    text.id = "pg-text-out";
    button.disabled = true;
    out.setAttribute("aria-busy", "true");
    try {
      const resp = await fetch("/hub/playground/send", {
        method: "POST",
        body: new URLSearchParams(new FormData(pg)),
        headers: { "content-type": "application/x-www-form-urlencoded" },
      });
      const cmd = resp.headers.get("x-maximin-curl");
      if (cmd) curl.textContent = new TextDecoder().decode(Uint8Array.from(atob(cmd), (c) => c.charCodeAt(0)));
      const type = resp.headers.get("content-type") || "";
      if (type.startsWith("text/event-stream")) {
        out.append(text);
        const reader = resp.body.getReader();
        const decoder = new TextDecoder();
        let buf = "";
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const event = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            for (const line of event.split("\n")) {
              if (!line.startsWith("data:")) continue;
              const data = line.slice(5).trim();
              if (data === "[DONE]") continue;
              try {
                let j = JSON.parse(data);
                if (j.data && j.data.choices) j = j.data;
                const d = j.choices && j.choices[0] && j.choices[0].delta;
                if (d && d.content) text.textContent += d.content;
              } catch (_) { /* not JSON: ignore */ }
            }
          }
        }
        return;
      }
      let body = await resp.json().catch(() => null);
      if (body && body.data && body.data.choices) body = body.data;
      const content = body && body.choices && body.choices[0] && body.choices[0].message && body.choices[0].message.content;
      const audio = body && body.data && body.data.audio;
      const image = body && body.data && body.data.image_base64 && body.data.image_base64[0];
      if (content) {
        text.textContent = content;
        out.append(text);
      } else if (audio) {
        const bytes = new Uint8Array(audio.match(/../g).map((h) => parseInt(h, 16)));
        const el = document.createElement("audio");
        el.controls = true;
        el.src = URL.createObjectURL(new Blob([bytes], { type: "audio/mpeg" }));
        out.append(el);
      } else if (image) {
        const img = document.createElement("img");
        img.alt = "The generated image";
        img.src = "data:image/png;base64," + image;
        out.append(img);
      } else {
        const pre = document.createElement("pre");
        pre.textContent = JSON.stringify(body, null, 2);
        out.append(pre);
      }
      if (!resp.ok && body && body.error) {
        const p = document.createElement("p");
        p.className = "error";
        p.setAttribute("role", "alert");
        p.textContent = body.error.message;
        out.prepend(p);
      }
    } finally {
      button.disabled = false;
      out.setAttribute("aria-busy", "false");
    }
  });
}
