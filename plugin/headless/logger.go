package headless

import (
	"fmt"
	"strings"

	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/go-logr/logr"
)

var log = clog.NewWithPlugin(pluginName)

// klogSink routes client-go's klog output into CoreDNS's log, so that a lost
// watch shows up as "[ERROR] plugin/headless: ..." beside everything else.
type klogSink struct{ kv []any }

func (klogSink) Init(logr.RuntimeInfo) {}

// Enabled keeps client-go's chatter (V(2) and up) out of the log.
func (klogSink) Enabled(level int) bool { return level < 2 }

func (s klogSink) Info(_ int, msg string, kv ...any) { log.Info(s.line(msg, nil, kv)) }

func (s klogSink) Error(err error, msg string, kv ...any) { log.Error(s.line(msg, err, kv)) }

func (s klogSink) WithValues(kv ...any) logr.LogSink {
	return klogSink{kv: append(append([]any(nil), s.kv...), kv...)}
}

func (s klogSink) WithName(string) logr.LogSink { return s }

func (s klogSink) line(msg string, err error, kv []any) string {
	var b strings.Builder
	b.WriteString(msg)
	if err != nil {
		b.WriteString(": ")
		b.WriteString(err.Error())
	}
	all := append(append([]any(nil), s.kv...), kv...)
	for i := 0; i+1 < len(all); i += 2 {
		fmt.Fprintf(&b, " %v=%v", all[i], all[i+1])
	}
	return b.String()
}
