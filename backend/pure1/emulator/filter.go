package emulator

import (
	"fmt"
	"slices"
	"strings"
)

// Pure1's filter syntax, as Pure's SDK writes it (pypureclient.Filter):
//
//	name='a'   name!='a'   version>='6.5'   (=, !=, <, <=, >, >=)
//	os=('Purity//FA','Purity//FB')          in a list (!= for not in)
//	contains(name, 'array-0')               substring
//	fqdn                                    the field is set
//	a and b   a or b   not(a)   (a or b) and c
//
// "and" binds tighter than "or", as the SDK relies on: it writes f1 & f2 | f3
// without parentheses. Array fields are strings and compare as strings.

// arrayFields are the array fields a filter or sort may name.
var arrayFields = map[string]func(Array) string{
	"id":      func(a Array) string { return a.ID },
	"name":    func(a Array) string { return a.Name },
	"fqdn":    func(a Array) string { return a.FQDN },
	"model":   func(a Array) string { return a.Model },
	"os":      func(a Array) string { return a.OS },
	"version": func(a Array) string { return a.Version },
}

func fieldList() string {
	names := make([]string, 0, len(arrayFields))
	for n := range arrayFields {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

type filterExpr interface{ match(Array) bool }

type (
	andExpr   struct{ l, r filterExpr }
	orExpr    struct{ l, r filterExpr }
	notExpr   struct{ e filterExpr }
	existExpr struct{ field string }
	cmpExpr   struct {
		field, op string
		values    []string // one, or a list for = and !=
	}
	containsExpr struct{ field, sub string }
)

func (e andExpr) match(a Array) bool      { return e.l.match(a) && e.r.match(a) }
func (e orExpr) match(a Array) bool       { return e.l.match(a) || e.r.match(a) }
func (e notExpr) match(a Array) bool      { return !e.e.match(a) }
func (e existExpr) match(a Array) bool    { return arrayFields[e.field](a) != "" }
func (e containsExpr) match(a Array) bool { return strings.Contains(arrayFields[e.field](a), e.sub) }

func (e cmpExpr) match(a Array) bool {
	v := arrayFields[e.field](a)
	switch e.op {
	case "=":
		return slices.Contains(e.values, v)
	case "!=":
		return !slices.Contains(e.values, v)
	case "<":
		return v < e.values[0]
	case "<=":
		return v <= e.values[0]
	case ">":
		return v > e.values[0]
	default: // ">="
		return v >= e.values[0]
	}
}

// parseFilter parses a filter; errors say where and what was expected.
func parseFilter(s string) (filterExpr, error) {
	p := &lexer{src: s}
	e, err := p.orExpr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if !p.eof() {
		return nil, fmt.Errorf("unexpected %q at offset %d", p.src[p.pos:], p.pos)
	}
	return e, nil
}

// lexer is a cursor over a filter or a list, with the recursive-descent
// parser's methods on it.
type lexer struct {
	src string
	pos int
}

func (l *lexer) eof() bool  { return l.pos >= len(l.src) }
func (l *lexer) peek() byte { return l.src[l.pos] }

func (l *lexer) skipSpace() {
	for !l.eof() && (l.peek() == ' ' || l.peek() == '\t') {
		l.pos++
	}
}

// quoted reads '...' with \' and \\ escapes, as the SDK's quoteString writes them.
func (l *lexer) quoted() (string, error) {
	start := l.pos
	l.pos++ // the opening quote
	var b strings.Builder
	for !l.eof() {
		c := l.peek()
		l.pos++
		switch {
		case c == '\\' && !l.eof():
			b.WriteByte(l.peek())
			l.pos++
		case c == '\'':
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("unterminated quote starting at offset %d", start)
}

func isIdent(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '[' || c == ']'
}

func (l *lexer) ident() string {
	l.skipSpace()
	start := l.pos
	for !l.eof() && isIdent(l.peek()) {
		l.pos++
	}
	return l.src[start:l.pos]
}

// keyword consumes word if it comes next as a whole word.
func (l *lexer) keyword(word string) bool {
	l.skipSpace()
	end := l.pos + len(word)
	if end > len(l.src) || !strings.EqualFold(l.src[l.pos:end], word) || (end < len(l.src) && isIdent(l.src[end])) {
		return false
	}
	l.pos = end
	return true
}

func (l *lexer) expect(c byte) error {
	l.skipSpace()
	if l.eof() || l.peek() != c {
		got := "the end"
		if !l.eof() {
			got = fmt.Sprintf("%q", l.peek())
		}
		return fmt.Errorf("expected %q at offset %d, found %s", c, l.pos, got)
	}
	l.pos++
	return nil
}

func (l *lexer) orExpr() (filterExpr, error) {
	left, err := l.andExpr()
	for err == nil && l.keyword("or") {
		var right filterExpr
		if right, err = l.andExpr(); err == nil {
			left = orExpr{left, right}
		}
	}
	return left, err
}

func (l *lexer) andExpr() (filterExpr, error) {
	left, err := l.unary()
	for err == nil && l.keyword("and") {
		var right filterExpr
		if right, err = l.unary(); err == nil {
			left = andExpr{left, right}
		}
	}
	return left, err
}

func (l *lexer) field() (string, error) {
	at := l.pos
	f := l.ident()
	if f == "" {
		return "", fmt.Errorf("expected a field name at offset %d", at)
	}
	if _, ok := arrayFields[f]; !ok {
		return "", fmt.Errorf("unknown field %q; arrays have %s", f, fieldList())
	}
	return f, nil
}

func (l *lexer) value(field string) (string, error) {
	l.skipSpace()
	if l.eof() || l.peek() != '\'' {
		return "", fmt.Errorf("%s is a string: quote the value at offset %d (%s='...')", field, l.pos, field)
	}
	return l.quoted()
}

func (l *lexer) unary() (filterExpr, error) {
	switch {
	case l.keyword("not"):
		if err := l.expect('('); err != nil {
			return nil, err
		}
		e, err := l.orExpr()
		if err == nil {
			err = l.expect(')')
		}
		return notExpr{e}, err
	case l.keyword("contains"):
		if err := l.expect('('); err != nil {
			return nil, err
		}
		f, err := l.field()
		if err != nil {
			return nil, err
		}
		if err := l.expect(','); err != nil {
			return nil, err
		}
		sub, err := l.value(f)
		if err == nil {
			err = l.expect(')')
		}
		return containsExpr{f, sub}, err
	}
	l.skipSpace()
	if !l.eof() && l.peek() == '(' {
		l.pos++
		e, err := l.orExpr()
		if err == nil {
			err = l.expect(')')
		}
		return e, err
	}
	f, err := l.field()
	if err != nil {
		return nil, err
	}
	l.skipSpace()
	op := ""
	for _, o := range []string{"!=", ">=", "<=", "=", ">", "<"} {
		if strings.HasPrefix(l.src[l.pos:], o) {
			op = o
			break
		}
	}
	if op == "" {
		return existExpr{f}, nil
	}
	l.pos += len(op)
	l.skipSpace()
	if !l.eof() && l.peek() == '(' {
		if op != "=" && op != "!=" {
			return nil, fmt.Errorf("a list of values needs = or !=, not %s", op)
		}
		l.pos++
		var vals []string
		for {
			v, err := l.value(f)
			if err != nil {
				return nil, err
			}
			vals = append(vals, v)
			l.skipSpace()
			if !l.eof() && l.peek() == ',' {
				l.pos++
				continue
			}
			if err := l.expect(')'); err != nil {
				return nil, err
			}
			return cmpExpr{f, op, vals}, nil
		}
	}
	v, err := l.value(f)
	return cmpExpr{f, op, []string{v}}, err
}
