// Service worker: shows gridwatch alerts; the tag dedupes a resent alert.
self.addEventListener("push", (event) => {
  const data = event.data ? event.data.json() : {};
  event.waitUntil(self.registration.showNotification(data.title || "gridwatch", {
    body: data.body || "", tag: data.tag, renotify: false,
  }));
});
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(clients.openWindow("./"));
});
