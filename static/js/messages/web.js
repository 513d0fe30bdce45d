// The Chinese of the server's `web.*` messages (English: console/messages/web.py). Strict JSON after `export default`.
export default {
}
