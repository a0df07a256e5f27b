package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// docRoot is the repository root, where README.md and docs/ live.
const docRoot = "../.."

// flagRow is one row of docs/operator.md's flag table.
type flagRow struct {
	def, reload string
}

// operatorFlagTable parses the table under "## Flags" in docs/operator.md:
// | `-name` | default | yes/no | meaning |.
func operatorFlagTable(t *testing.T) map[string]flagRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(docRoot, "docs", "operator.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Flags\n")
	if !ok {
		t.Fatal(`docs/operator.md has no "## Flags" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]flagRow{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `-") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) < 4 {
			t.Errorf("flag row with %d cells, want 4: %s", len(cells), line)
			continue
		}
		name := strings.TrimPrefix(strings.Trim(strings.TrimSpace(cells[0]), "`"), "-")
		if _, dup := rows[name]; dup {
			t.Errorf("-%s is listed twice", name)
		}
		rows[name] = flagRow{def: strings.TrimSpace(cells[1]), reload: strings.TrimSpace(cells[2])}
	}
	return rows
}

// The flag table in docs/operator.md lists exactly the flags wsd defines,
// each with its real default and whether SIGHUP may change it.
func TestOperatorFlagTable(t *testing.T) {
	rows := operatorFlagTable(t)
	fs := newFlagSet(&options{}, io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		row, ok := rows[f.Name]
		if !ok {
			t.Errorf("-%s (default %q) is not in docs/operator.md's flag table", f.Name, f.DefValue)
			return
		}
		delete(rows, f.Name)
		if !sameDefault(f, row.def) {
			t.Errorf("-%s: docs/operator.md says default %s, wsd has %q", f.Name, row.def, f.DefValue)
		}
		if want := map[bool]string{true: "yes", false: "no"}[reloadableFlag(f.Name) >= 0]; row.reload != want {
			t.Errorf("-%s: docs/operator.md says reload %q, wsd says %q", f.Name, row.reload, want)
		}
	})
	for name := range rows {
		t.Errorf("docs/operator.md lists -%s, which wsd does not define", name)
	}
}

// sameDefault reports whether a default cell documents f's default: the
// value in backquotes ("1m30s" and "90s" alike for a duration), "(none)"
// for an empty string, GOMAXPROCS for a default taken from it.
func sameDefault(f *flag.Flag, cell string) bool {
	switch {
	case cell == "(none)":
		return f.DefValue == ""
	case cell == "GOMAXPROCS":
		return f.DefValue == strconv.Itoa(runtime.GOMAXPROCS(0))
	case len(cell) < 2 || cell[0] != '`' || cell[len(cell)-1] != '`':
		return false
	}
	v := cell[1 : len(cell)-1]
	if v == f.DefValue {
		return true
	}
	d1, err1 := time.ParseDuration(v)
	d2, err2 := time.ParseDuration(f.DefValue)
	return err1 == nil && err2 == nil && d1 == d2
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	mdFence   = regexp.MustCompile("(?ms)^```.*?^```")
)

// anchor is GitHub's id for a heading: lower case, punctuation dropped,
// spaces as dashes.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the heading ids of a markdown file.
func anchors(text string) map[string]bool {
	ids := map[string]bool{}
	for _, m := range mdHeading.FindAllStringSubmatch(mdFence.ReplaceAllString(text, ""), -1) {
		ids[anchor(m[1])] = true
	}
	return ids
}

// Every relative link in README.md and docs/*.md resolves: to a file or
// directory of the repository and, with a #fragment, to a heading of the
// markdown file it names.
func TestDocLinks(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(docRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(docRoot, "README.md"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, m := range mdLink.FindAllStringSubmatch(mdFence.ReplaceAllString(text, ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(target, "#")
			dest := file
			if path != "" {
				dest = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link %s: %v", filepath.Base(file), target, err)
					continue
				}
			}
			if frag == "" {
				continue
			}
			db, err := os.ReadFile(dest)
			if err != nil || !strings.HasSuffix(dest, ".md") {
				t.Errorf("%s: link %s: a #fragment into something that is not markdown", filepath.Base(file), target)
				continue
			}
			if !anchors(string(db))[frag] {
				t.Errorf("%s: link %s: no heading #%s in %s", filepath.Base(file), target, frag, filepath.Base(dest))
			}
		}
	}
}

// TestPackageMap: the README's package map names every package of the
// module (a directory holding non-test Go files), so a new package is
// placed on the map when it lands.
func TestPackageMap(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(docRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| \\[([a-z0-9/]+)\\]\\(").FindAllStringSubmatch(string(b), -1) {
		listed[m[1]] = true
	}
	err = filepath.WalkDir(docRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != docRoot && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		pkg, _ := filepath.Rel(docRoot, filepath.Dir(path))
		if !listed[filepath.ToSlash(pkg)] {
			t.Errorf("package %s is not in the README's package map", pkg)
			listed[filepath.ToSlash(pkg)] = true // once
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
