package alerts

import (
	"fmt"
	"hash"
	"hash/fnv"
	"slices"
	"strconv"
)

// separator cannot occur in UTF-8, so joined names and values cannot run
// into each other (Prometheus's model.SeparatorByte).
const separator = 0xff

// Fingerprint is Alertmanager's fingerprint of a label set
// (prometheus/common model.LabelSet.Fingerprint, printed by
// model.Fingerprint.String): FNV-1a 64 over the labels sorted by name, each
// name and value followed by 0xff, as 16 hex digits. Tests check it against
// prometheus/common's own vectors and a fingerprint Alertmanager sent.
func Fingerprint(labels map[string]string) string {
	return fmt.Sprintf("%016x", hashLabels(fnv.New64a(), labels))
}

// genericFingerprint derives a generic alert's fingerprint from its
// source, title and labels. The leading 0xfe (also impossible in UTF-8)
// keeps it apart from any Alertmanager fingerprint of a label set.
func genericFingerprint(source, title string, labels map[string]string) string {
	h := fnv.New64a()
	h.Write([]byte{0xfe})
	h.Write([]byte(source))
	h.Write([]byte{separator})
	h.Write([]byte(title))
	h.Write([]byte{separator})
	return fmt.Sprintf("%016x", hashLabels(h, labels))
}

func hashLabels(h hash.Hash64, labels map[string]string) uint64 {
	for _, k := range sortedKeys(labels) {
		h.Write([]byte(k))
		h.Write([]byte{separator})
		h.Write([]byte(labels[k]))
		h.Write([]byte{separator})
	}
	return h.Sum64()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// quote names a label in a message, cut short so that an oversized name
// does not make an oversized error.
func quote(s string) string {
	return strconv.Quote(clip(s, 40))
}
