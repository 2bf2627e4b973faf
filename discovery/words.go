package discovery

import (
	"errors"
	"strings"
)

// splitWords splits a hook flag's value into words as a POSIX shell would,
// without any expansion: white space separates words; single quotes keep
// everything up to the next single quote; double quotes keep everything up
// to the next unescaped double quote, a backslash in them escaping only
// \, ", $, ` and a newline; outside quotes a backslash keeps the next
// character. A backslash before a newline joins lines. $, *, ~, ;, | and
// the like are ordinary characters. An unterminated quote or a final
// backslash is an error.
//
// For example `"/my dir/hook" 'a b' c\ d` is "/my dir/hook", "a b", "c d".
func splitWords(s string) ([]string, error) {
	var (
		words []string
		w     strings.Builder
		inW   bool // a word has started (it may still be empty: '')
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			if inW {
				words = append(words, w.String())
				w.Reset()
				inW = false
			}
		case '\\':
			if i+1 == len(s) {
				return nil, errors.New("backslash at the end")
			}
			i++
			if s[i] != '\n' {
				w.WriteByte(s[i])
				inW = true
			}
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			w.WriteString(s[i+1 : i+1+j])
			i += 1 + j
			inW = true
		case '"':
			inW = true
			closed := false
			for i++; i < len(s); i++ {
				c := s[i]
				if c == '"' {
					closed = true
					break
				}
				if c == '\\' && i+1 < len(s) {
					switch s[i+1] {
					case '\\', '"', '$', '`':
						i++
						w.WriteByte(s[i])
						continue
					case '\n':
						i++
						continue
					}
				}
				w.WriteByte(c)
			}
			if !closed {
				return nil, errors.New("unterminated double quote")
			}
		default:
			w.WriteByte(c)
			inW = true
		}
	}
	if inW {
		words = append(words, w.String())
	}
	return words, nil
}
