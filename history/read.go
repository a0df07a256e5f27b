package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsd-chat/wsd/chat"
)

// Read implements chat.Log by walking the room's prev pointers back from
// its last message, one direct get each: the cost is max+2 gets of about
// 15 µs whatever the number of rooms in the stream, where a consumer
// filtered on the room's subject pays for scanning the stream's blocks
// (bench_test.go: BenchmarkRead, BenchmarkReadConsumer).
//
// The walk follows only a chain JetStream vouched for: each prev is the
// room's last message when the next was stored (the expected-last-subject
// check), so a message of the same epoch one seq before. Where the chain
// breaks (a message expired, or one written by something else) the
// retained history starts. A room whose last message is not a valid
// record has no position (Seq 0, Epoch ""): its next message starts a new
// epoch.
//
// Info.Bytes is the bytes of the texts fn got, not of all retained
// messages (JetStream would have to read them all).
func (l *Log) Read(room string, after uint64, max int, fn func(m *chat.Message)) (chat.Info, error) {
	t0 := time.Now()
	info, err := l.read(room, after, max, fn)
	l.st.noteRead(time.Since(t0))
	if err != nil {
		l.st.readErrors.Add(1)
	}
	return info, err
}

func (l *Log) read(room string, after uint64, max int, fn func(m *chat.Message)) (chat.Info, error) {
	info := chat.Info{Room: room, First: 1}
	if room != "" && !chat.ValidRoom(room) {
		return info, fmt.Errorf("history: invalid room %q", room)
	}
	if l.ctx.Err() != nil {
		return info, chat.ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.ReadTimeout)
	defer cancel()
	subj := l.subject(room)

	l.st.readGets.Add(1)
	raw, err := l.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return info, nil
	}
	if err != nil {
		return info, l.classify(err)
	}
	last, err := parseStamp(raw.Header)
	if err == nil {
		var ok, missing bool
		if ok, missing, err = l.linked(ctx, subj, &last, raw.Sequence); err != nil {
			return info, l.classify(err)
		}
		if !ok && !missing {
			err = errHeader
		}
	}
	if err != nil {
		l.st.readSkipped.Add(1)
		return info, nil
	}
	info.Seq, info.Epoch, info.First = last.seq, last.epoch, last.seq+1

	// The first retained message of the subject: if it is of the epoch,
	// the retained run is First..Seq and the walk can stop at max.
	first := uint64(0)
	l.st.readGets.Add(1)
	if f, err := l.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj)); err == nil {
		if fr, err := parseStamp(f.Header); err == nil && fr.epoch == last.epoch && fr.seq <= last.seq {
			first = fr.seq
		}
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return info, l.classify(err)
	}

	want := 0
	if max > 0 && after < last.seq {
		want = int(min(uint64(max), last.seq-after))
	}
	// Walk back: newest first into msgs, handed to fn oldest first.
	var msgs []*jetstream.RawStreamMsg
	cur, curRec := raw, last
	oldest, broke := last.seq, false
	for {
		oldest = curRec.seq
		if len(msgs) < want {
			msgs = append(msgs, cur)
		}
		if first != 0 && len(msgs) >= want {
			break // the length is known and max are collected
		}
		if curRec.seq == 1 || curRec.prev == 0 || (first != 0 && curRec.seq <= first) {
			break
		}
		l.st.readGets.Add(1)
		p, err := l.stream.GetMsg(ctx, curRec.prev)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			broke = true
			break
		}
		if err != nil {
			return info, l.classify(err)
		}
		pr, err := parseStamp(p.Header)
		if err != nil || p.Subject != subj || pr.epoch != curRec.epoch || pr.seq+1 != curRec.seq {
			broke = true
			break
		}
		cur, curRec = p, pr
	}
	if first == 0 || broke && oldest > first {
		first = oldest
	}
	info.First = first
	info.Len = int(last.seq - first + 1)
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		rec, err := parseRecord(m.Header, m.Data, l.cfg.MaxText)
		if err != nil {
			l.st.readSkipped.Add(1)
			continue
		}
		if rec.seq <= after || rec.seq < first {
			continue
		}
		info.Bytes += int64(len(rec.text))
		fn(&chat.Message{
			Room:  room,
			Stamp: chat.Stamp{Seq: rec.seq, Epoch: rec.epoch, TS: rec.ts},
			From:  string(rec.from),
			ID:    rec.id,
			Text:  rec.text,
		})
	}
	return info, nil
}
