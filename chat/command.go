package chat

import (
	"strconv"
	"unicode/utf8"
)

// Type is a command's "type".
type Type uint8

// Command types a v1 client sends.
const (
	TypeNone    Type = iota // no command parsed
	TypeSend                // {"type":"send","room":R,"id":CID,"text":T}
	TypeJoin                // {"type":"join","room":R,"since":N,"epoch":E} or {"type":"join","room":R,"history":K}
	TypeLeave               // {"type":"leave","room":R}
	TypeMembers             // {"type":"members","room":R}
)

func (t Type) String() string {
	switch t {
	case TypeSend:
		return "send"
	case TypeJoin:
		return "join"
	case TypeLeave:
		return "leave"
	case TypeMembers:
		return "members"
	}
	return "none"
}

// MaxEpochLen is the longest "epoch" a join may carry. Epochs wsd makes are
// EpochLen bytes; the slack lets a later store use longer ones.
const MaxEpochLen = 32

// DefaultMaxHistory is Limits.MaxHistory when it is not set.
const DefaultMaxHistory = 100

// Limits are the caller's bounds on a command's fields.
type Limits struct {
	// MaxText is the largest "text" in bytes, after unescaping; 0 means
	// no bound beyond the frame's own size (-max-message).
	MaxText int
	// MaxHistory is the largest "history" a join may ask for; 0 means
	// DefaultMaxHistory. A larger one is refused, not clamped, so a client
	// never believes it got more history than it did.
	MaxHistory int
}

// Command is one parsed client command. Its byte slices point into the
// frame given to ParseCommand and are valid as long as that frame is.
type Command struct {
	Type Type
	Room []byte
	ID   []byte // the client's message id; nil when absent
	Text []byte // send only

	// join only: at most one of HasSince and HasHistory is set.
	HasSince   bool
	Since      uint64
	Epoch      []byte
	HasHistory bool
	History    int
}

// Field bits, for duplicate detection and the fields a type allows.
const (
	fType = 1 << iota
	fRoom
	fID
	fText
	fSince
	fEpoch
	fHistory
)

var allowed = [...]int{
	TypeSend:    fType | fRoom | fID | fText,
	TypeJoin:    fType | fRoom | fID | fSince | fEpoch | fHistory,
	TypeLeave:   fType | fRoom | fID,
	TypeMembers: fType | fRoom | fID,
}

var fieldNames = [...]string{"type", "room", "id", "text", "since", "epoch", "history"}

// maxDepth bounds the nesting of an ignored field's value.
const maxDepth = 32

// ParseCommand parses one v1 text frame into cmd. It is strict: the frame
// must be exactly one JSON object (RFC 8259; whitespace around tokens
// allowed), valid UTF-8 with no lone surrogate escapes, with no key twice,
// and with the fields its type needs and no field of another type.
// Unknown fields are ignored (after being checked to be valid JSON) so a
// newer client may add fields an older server does not know. Keys match
// exactly (encoding/json would also take "Type").
//
// Every refusal is an *Error; cmd.ID holds the command's id if it was read
// before the refusal was found (the error frame echoes it), else nil.
//
// ParseCommand unescapes strings in place: it rewrites p, and cmd's slices
// point into p. It does not allocate, except for the *Error of a refusal.
func ParseCommand(cmd *Command, p []byte, lim Limits) error {
	*cmd = Command{}
	ps := parser{p: p}
	err := ps.object(cmd)
	if err == nil {
		err = ps.err
	}
	if err != nil {
		if len(cmd.ID) > MaxIDLen {
			cmd.ID = nil // an error frame echoes only an id the command could have had
		}
		return err
	}
	return cmd.check(ps.seen, lim)
}

func malformed(reason string) *Error { return &Error{Code: CodeMalformed, Reason: reason} }

type parser struct {
	p    []byte
	i    int
	seen int
	err  *Error // the first refusal that is not a syntax error
}

// fail keeps the first non-syntax refusal; scanning goes on so that a
// malformed frame is always reported as such.
func (ps *parser) fail(code Code, reason string) {
	if ps.err == nil {
		ps.err = &Error{Code: code, Reason: reason}
	}
}

func (ps *parser) ws() {
	for ps.i < len(ps.p) {
		switch ps.p[ps.i] {
		case ' ', '\t', '\n', '\r':
			ps.i++
		default:
			return
		}
	}
}

func (ps *parser) peek() byte {
	if ps.i < len(ps.p) {
		return ps.p[ps.i]
	}
	return 0
}

func (ps *parser) object(cmd *Command) *Error {
	ps.ws()
	if ps.peek() != '{' {
		return malformed("not a JSON object")
	}
	ps.i++
	ps.ws()
	if ps.peek() == '}' {
		ps.i++
	} else {
		for {
			ps.ws()
			if ps.peek() != '"' {
				return malformed("expected a key")
			}
			key, ok := ps.str()
			if !ok {
				return malformed("bad string")
			}
			ps.ws()
			if ps.peek() != ':' {
				return malformed("expected ':'")
			}
			ps.i++
			ps.ws()
			if e := ps.field(cmd, key); e != nil {
				return e
			}
			ps.ws()
			c := ps.peek()
			ps.i++
			if c == '}' {
				break
			}
			if c != ',' {
				return malformed("expected ',' or '}'")
			}
		}
	}
	ps.ws()
	if ps.i != len(ps.p) {
		return malformed("data after the object")
	}
	return nil
}

// field reads the value of key.
func (ps *parser) field(cmd *Command, key []byte) *Error {
	var bit int
	switch string(key) {
	case "type":
		bit = fType
	case "room":
		bit = fRoom
	case "id":
		bit = fID
	case "text":
		bit = fText
	case "since":
		bit = fSince
	case "epoch":
		bit = fEpoch
	case "history":
		bit = fHistory
	default:
		if !ps.skip() {
			return malformed("bad value")
		}
		return nil
	}
	if ps.seen&bit != 0 {
		return malformed("duplicate key")
	}
	ps.seen |= bit
	switch bit {
	case fSince, fHistory:
		return ps.number(cmd, bit)
	}
	if ps.peek() != '"' {
		ps.fail(CodeBadField, fieldName(bit)+" must be a string")
		if !ps.skip() {
			return malformed("bad value")
		}
		return nil
	}
	s, ok := ps.str()
	if !ok {
		return malformed("bad string")
	}
	switch bit {
	case fType:
		switch string(s) {
		case "send":
			cmd.Type = TypeSend
		case "join":
			cmd.Type = TypeJoin
		case "leave":
			cmd.Type = TypeLeave
		case "members":
			cmd.Type = TypeMembers
		default:
			ps.fail(CodeUnknownType, "unknown type")
		}
	case fRoom:
		cmd.Room = s
	case fID:
		cmd.ID = s
	case fText:
		cmd.Text = s
	case fEpoch:
		cmd.Epoch = s
	}
	return nil
}

func fieldName(bit int) string {
	for i, n := range fieldNames {
		if bit == 1<<i {
			return n
		}
	}
	return "field"
}

// number reads since or history: a JSON number that must be a
// non-negative integer (no sign, fraction or exponent).
func (ps *parser) number(cmd *Command, bit int) *Error {
	c := ps.peek()
	if c != '-' && (c < '0' || c > '9') {
		ps.fail(CodeBadField, fieldName(bit)+" must be a non-negative integer")
		if !ps.skip() {
			return malformed("bad value")
		}
		return nil
	}
	start := ps.i
	integer, ok := ps.skipNumber()
	if !ok {
		return malformed("bad number")
	}
	if !integer {
		ps.fail(CodeBadField, fieldName(bit)+" must be a non-negative integer")
		return nil
	}
	var v uint64
	for _, c := range ps.p[start:ps.i] {
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			ps.fail(CodeBadField, fieldName(bit)+" is too large")
			return nil
		}
		v = v*10 + d
	}
	if bit == fSince {
		cmd.Since, cmd.HasSince = v, true
		return nil
	}
	if v > 1<<31 {
		ps.fail(CodeBadField, "history is too large")
		return nil
	}
	cmd.History, cmd.HasHistory = int(v), true
	return nil
}

// skipNumber consumes a JSON number and reports whether it is a plain
// non-negative integer (digits only).
func (ps *parser) skipNumber() (integer, ok bool) {
	p, i := ps.p, ps.i
	integer = true
	if i < len(p) && p[i] == '-' {
		integer = false
		i++
	}
	switch {
	case i < len(p) && p[i] == '0':
		i++
	case i < len(p) && p[i] >= '1' && p[i] <= '9':
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
	default:
		return false, false
	}
	if i < len(p) && p[i] == '.' {
		integer = false
		i++
		d := i
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		if i == d {
			return false, false
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		integer = false
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		d := i
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		if i == d {
			return false, false
		}
	}
	ps.i = i
	return integer, true
}

// str reads the JSON string at ps.i (which is '"'), unescaping it in place,
// and returns its bytes. It refuses raw control characters, bad escapes,
// lone surrogates and invalid UTF-8.
func (ps *parser) str() ([]byte, bool) {
	p := ps.p
	start := ps.i + 1
	i := start
	high := false
	for ; i < len(p); i++ {
		c := p[i]
		if c == '"' {
			ps.i = i + 1
			s := p[start:i]
			return s, !high || utf8.Valid(s)
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, false
		}
		if c >= 0x80 {
			high = true
		}
	}
	// Slow path: escapes. The write cursor w never passes the read
	// cursor i, because every escape is longer than what it decodes to.
	w := i
	for i < len(p) {
		c := p[i]
		switch {
		case c == '"':
			ps.i = i + 1
			s := p[start:w]
			return s, !high || utf8.Valid(s)
		case c < 0x20:
			return nil, false
		case c != '\\':
			if c >= 0x80 {
				high = true
			}
			p[w] = c
			w++
			i++
			continue
		}
		if i+1 >= len(p) {
			return nil, false
		}
		var b byte
		switch p[i+1] {
		case '"', '\\', '/':
			b = p[i+1]
		case 'b':
			b = '\b'
		case 'f':
			b = '\f'
		case 'n':
			b = '\n'
		case 'r':
			b = '\r'
		case 't':
			b = '\t'
		case 'u':
			r, ok := hex4(p[i+2:])
			if !ok {
				return nil, false
			}
			i += 6
			switch {
			case r >= 0xDC00 && r < 0xE000:
				return nil, false // a low surrogate with no high one before it
			case r >= 0xD800 && r < 0xDC00:
				if i+1 >= len(p) || p[i] != '\\' || p[i+1] != 'u' {
					return nil, false
				}
				lo, ok := hex4(p[i+2:])
				if !ok || lo < 0xDC00 || lo >= 0xE000 {
					return nil, false
				}
				i += 6
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			}
			w += utf8.EncodeRune(p[w:], r)
			continue
		default:
			return nil, false
		}
		p[w] = b
		w++
		i += 2
	}
	return nil, false
}

func hex4(p []byte) (rune, bool) {
	if len(p) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skip consumes one JSON value of any kind, checking its syntax, with
// objects and arrays nested at most maxDepth deep.
func (ps *parser) skip() bool {
	var stack [maxDepth]byte
	d := 0
	for {
		// A value starts here.
		ps.ws()
		ok := true
		switch c := ps.peek(); {
		case c == '"':
			_, ok = ps.str()
		case c == '{' || c == '[':
			ps.i++
			ps.ws()
			end := byte('}')
			if c == '[' {
				end = ']'
			}
			if ps.peek() == end {
				ps.i++
				break
			}
			if d == maxDepth {
				return false
			}
			stack[d] = c
			d++
			if c == '{' && !ps.key() {
				return false
			}
			continue
		case c == 't':
			ok = ps.literal("true")
		case c == 'f':
			ok = ps.literal("false")
		case c == 'n':
			ok = ps.literal("null")
		case c == '-' || (c >= '0' && c <= '9'):
			_, ok = ps.skipNumber()
		default:
			ok = false
		}
		if !ok {
			return false
		}
		// After a value: close containers, or go on to the next element.
		for {
			if d == 0 {
				return true
			}
			ps.ws()
			c := ps.peek()
			ps.i++
			if c == ',' {
				if stack[d-1] == '{' && !ps.key() {
					return false
				}
				break
			}
			if (c == '}' && stack[d-1] == '{') || (c == ']' && stack[d-1] == '[') {
				d--
				continue
			}
			return false
		}
	}
}

// key consumes `"name" :` inside an ignored object.
func (ps *parser) key() bool {
	ps.ws()
	if ps.peek() != '"' {
		return false
	}
	if _, ok := ps.str(); !ok {
		return false
	}
	ps.ws()
	if ps.peek() != ':' {
		return false
	}
	ps.i++
	return true
}

func (ps *parser) literal(lit string) bool {
	if len(ps.p)-ps.i < len(lit) || string(ps.p[ps.i:ps.i+len(lit)]) != lit {
		return false
	}
	ps.i += len(lit)
	return true
}

// check applies the rules of cmd's type to what was parsed.
func (cmd *Command) check(seen int, lim Limits) error {
	if seen&fType == 0 {
		return &Error{Code: CodeMissingField, Reason: "type is missing"}
	}
	if extra := seen &^ allowed[cmd.Type]; extra != 0 {
		return &Error{Code: CodeBadField, Reason: fieldName(extra&-extra) + " does not belong to " + cmd.Type.String()}
	}
	if seen&fRoom == 0 {
		return &Error{Code: CodeMissingField, Reason: "room is missing"}
	}
	// "" is the global room, as an absent or empty room= in the handshake.
	if len(cmd.Room) > 0 && !ValidRoom(cmd.Room) {
		return &Error{Code: CodeBadRoom, Reason: "room must be empty (the global room) or 1-64 bytes of A-Z a-z 0-9 _ - . :"}
	}
	if seen&fID != 0 {
		if len(cmd.ID) == 0 {
			return &Error{Code: CodeBadField, Reason: "id must not be empty"}
		}
		if len(cmd.ID) > MaxIDLen {
			cmd.ID = nil // not echoed: it is what was refused
			return &Error{Code: CodeTooLong, Reason: "id is longer than 64 bytes"}
		}
	}
	switch cmd.Type {
	case TypeSend:
		if seen&fText == 0 {
			return &Error{Code: CodeMissingField, Reason: "text is missing"}
		}
		if lim.MaxText > 0 && len(cmd.Text) > lim.MaxText {
			return &Error{Code: CodeTooLong, Reason: "text is longer than " + strconv.Itoa(lim.MaxText) + " bytes"}
		}
	case TypeJoin:
		switch {
		case cmd.HasSince && cmd.HasHistory:
			return &Error{Code: CodeBadField, Reason: "since and history exclude each other"}
		case seen&fEpoch != 0 && seen&fHistory != 0:
			return &Error{Code: CodeBadField, Reason: "epoch belongs with since, not history"}
		case cmd.HasSince && seen&fEpoch == 0:
			return &Error{Code: CodeMissingField, Reason: "epoch is missing (since needs the epoch it counts in)"}
		case seen&fEpoch != 0 && !cmd.HasSince:
			return &Error{Code: CodeMissingField, Reason: "since is missing (epoch goes with since)"}
		case seen&fEpoch != 0 && len(cmd.Epoch) == 0:
			return &Error{Code: CodeBadField, Reason: "epoch must not be empty"}
		case len(cmd.Epoch) > MaxEpochLen:
			return &Error{Code: CodeTooLong, Reason: "epoch is longer than 32 bytes"}
		}
		maxH := lim.MaxHistory
		if maxH <= 0 {
			maxH = DefaultMaxHistory
		}
		if cmd.History > maxH {
			return &Error{Code: CodeBadField, Reason: "history is over " + strconv.Itoa(maxH)}
		}
	}
	return nil
}
