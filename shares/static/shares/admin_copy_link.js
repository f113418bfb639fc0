// Share link admin: the "copy link" buttons copy the page's absolute URL.
document.addEventListener("click", function (event) {
  const button = event.target.closest(".copy-share-link");
  if (!button) return;
  const url = new URL(button.dataset.path, window.location.href).href;
  navigator.clipboard.writeText(url).then(function () {
    const label = button.textContent;
    button.textContent = "✓";
    setTimeout(function () { button.textContent = label; }, 1500);
  });
});
