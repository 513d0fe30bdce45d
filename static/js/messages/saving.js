// The Chinese of the server's `saving.*` messages (English: console/messages/saving.py). Strict JSON after `export default`.
export default {
}
