// The Chinese of the server's `review.*` messages (English: console/messages/review.py). Strict JSON after `export default`.
export default {
}
