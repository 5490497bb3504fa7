package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A run of chosen cases (-cases) updates the page in part: the rows of
// those cases in the table are replaced (or added, in the suite's
// order), each row marked with the run it comes from, and a section
// about that run (its date, commit, servers, commands) goes below the
// table; every other row, and the rest of the page (the full run's
// header, the federation section), stays as the last full run wrote it.
// A later run of the same cases replaces the section of an earlier one
// when it covers all of that run's cases. The failure notes of all the
// runs are numbered together, those no row refers to any more dropped.

const (
	runBegin = "<!-- RUN OF CHOSEN CASES %s cases=%s -->"
	runEnd   = "<!-- END RUN -->"
	// partialNote goes under the full run's header once a run of chosen
	// cases has updated the page.
	partialNote = "Rows marked *[run of DATE]* come from a later run of chosen cases (`-cases`), described below the\n" +
		"table; every other figure comes from this run."
)

var (
	runBeginRE = regexp.MustCompile(`^<!-- RUN OF CHOSEN CASES (.*) cases=(\S*) -->$`)
	runMarkRE  = regexp.MustCompile(` \*\[run of [^\]]*\]\*$`)
	noteRefRE  = regexp.MustCompile(`\[(\d+)\]`)
	noteLineRE = regexp.MustCompile(`^(\d+)\. (.*)$`)
	blankLines = regexp.MustCompile(`\n{3,}`)
)

// runMark is what marks the rows of r, a run of chosen cases.
func (r *report) runMark() string {
	return " *[run of " + r.date.Format("2006-01-02 15:04 MST") + "]*"
}

// mergeDoc updates the page at path with r, a run of chosen cases, as
// said above. The page must have been written by a run of the same
// servers.
func (r *report) mergeDoc(path string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	before, rest, ok1 := strings.Cut(string(old), beginMarker)
	region, after, ok2 := strings.Cut(rest, endMarker+"\n")
	if !ok1 || !ok2 {
		return fmt.Errorf("%s has no generated part to update: run the whole suite first", path)
	}
	merged, err := r.merge(region)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(before+beginMarker+merged+endMarker+"\n"+after), 0o644)
}

// merge returns the generated region (between the markers, exclusive)
// updated with r.
func (r *report) merge(region string) (string, error) {
	lines := strings.Split(strings.TrimSuffix(region, "\n"), "\n")
	// The main table: the first run of lines starting with "| case |".
	start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "| case |") })
	if start < 0 {
		return "", errors.New("no table of cases in the generated part")
	}
	end := start
	for end < len(lines) && strings.HasPrefix(lines[end], "|") {
		end++
	}
	oldTable := lines[start:end]
	head, tail := lines[:start], lines[end:]

	// The old failure notes, at the end, and what remains of the tail.
	var oldNotes []string
	if i := slices.Index(tail, "Failures:"); i >= 0 {
		for _, l := range tail[i+1:] {
			if m := noteLineRE.FindStringSubmatch(l); m != nil {
				oldNotes = append(oldNotes, m[2])
			}
		}
		tail = tail[:i]
	}
	// Sections of earlier runs of chosen cases: dropped when this run
	// covers every case of theirs.
	chosen := map[string]bool{}
	for _, c := range r.cases {
		chosen[c.name] = true
	}
	var kept, sections []string
	for i := 0; i < len(tail); i++ {
		m := runBeginRE.FindStringSubmatch(tail[i])
		if m == nil {
			kept = append(kept, tail[i])
			continue
		}
		j := i
		for j < len(tail) && tail[j] != runEnd {
			j++
		}
		covered := true
		for _, name := range strings.Split(m[2], ",") {
			covered = covered && chosen[name]
		}
		if !covered {
			sections = append(sections, strings.Join(tail[i:min(j+1, len(tail))], "\n"))
		}
		i = j
	}
	tail = kept

	// This run's table, its notes numbered after the old ones.
	newTable := strings.Split(strings.TrimSuffix(r.table(), "\n"), "\n")
	if len(newTable) < 2 || len(oldTable) < 2 || newTable[0] != oldTable[0] {
		return "", fmt.Errorf("the page's table has other columns (%s) than this run's (%s): run the same servers, or give -doc ''",
			oldTable[0], newTable[0])
	}
	shift := func(l string) string {
		return noteRefRE.ReplaceAllStringFunc(l, func(ref string) string {
			n, _ := strconv.Atoi(ref[1 : len(ref)-1])
			return "[" + strconv.Itoa(n+len(oldNotes)) + "]"
		})
	}
	mark := r.runMark()
	newRows := map[string][]string{} // case name → its rows, marked
	for _, c := range r.cases {
		for _, m := range metricsFor(c) {
			label := "| " + fmt.Sprintf(m.label, c.title) + " |"
			for _, l := range newTable[2:] {
				if strings.HasPrefix(l, label) {
					newRows[c.name] = append(newRows[c.name], "| "+fmt.Sprintf(m.label, c.title)+mark+" |"+shift(l[len(label):]))
				}
			}
		}
	}

	// The merged table: the suite's cases in order, each with this run's
	// rows if it ran, else the page's; then the page's rows of cases no
	// longer in the suite.
	caseOf := map[string]string{} // row label → case name
	for _, c := range suite(false) {
		if c.relay {
			continue // not in the table
		}
		for _, m := range metricsFor(c) {
			caseOf[fmt.Sprintf(m.label, c.title)] = c.name
		}
	}
	oldRows := map[string][]string{}
	var orphans []string
	for _, l := range oldTable[2:] {
		label, _, _ := strings.Cut(strings.TrimPrefix(l, "| "), " |")
		if name, ok := caseOf[runMarkRE.ReplaceAllString(label, "")]; ok {
			oldRows[name] = append(oldRows[name], l)
		} else {
			orphans = append(orphans, l)
		}
	}
	table := slices.Clone(oldTable[:2])
	for _, c := range suite(false) {
		if chosen[c.name] {
			table = append(table, newRows[c.name]...)
		} else {
			table = append(table, oldRows[c.name]...)
		}
	}
	table = append(table, orphans...)

	// This run's section, after those of earlier runs still referred to.
	var sec strings.Builder
	var names []string
	for _, c := range r.cases {
		names = append(names, c.name)
	}
	fmt.Fprintf(&sec, runBegin+"\n\n", r.date.Format(time.RFC3339), strings.Join(names, ","))
	fmt.Fprintf(&sec, "The rows marked *[run of %s]* come from `go run ./bench/compare -cases %s` on %s, which took %s,\n",
		r.date.Format("2006-01-02 15:04 MST"), strings.Join(names, ","), r.date.Format("2006-01-02 15:04 MST"), r.took.Round(time.Second))
	fmt.Fprintf(&sec, "on %s. Commit: %s.\n\n", r.machine, r.commit)
	sec.WriteString(r.setup())
	if s := strings.TrimSpace(r.floor()); s != "" {
		fl := strings.Split(s, "\n")
		for i, l := range fl {
			if strings.HasPrefix(l, "|") {
				fl[i] = shift(l)
			}
		}
		sec.WriteString(strings.Join(fl, "\n") + "\n\n")
	}
	if s := strings.TrimSpace(r.archiveNotes() + r.checks()); s != "" {
		sec.WriteString(s + "\n\n")
	}
	sec.WriteString(runEnd)
	sections = append(sections, sec.String())

	// The notes: the old ones, then this run's; those no row refers to
	// are dropped and the rest numbered again.
	notes := append(slices.Clone(oldNotes), r.notes...)
	body := append(append(slices.Clone(head), table...), "")
	body = append(body, strings.Split(strings.Join(sections, "\n\n"), "\n")...) // the floor rows in them refer to notes
	body = append(body, tail...)
	used := map[int]bool{}
	for _, l := range body {
		if strings.HasPrefix(l, "|") {
			for _, m := range noteRefRE.FindAllStringSubmatch(l, -1) {
				n, _ := strconv.Atoi(m[1])
				used[n] = true
			}
		}
	}
	renum := map[int]int{}
	var keptNotes []string
	for i, n := range notes {
		if used[i+1] {
			keptNotes = append(keptNotes, n)
			renum[i+1] = len(keptNotes)
		}
	}
	for i, l := range body {
		if strings.HasPrefix(l, "|") {
			body[i] = noteRefRE.ReplaceAllStringFunc(l, func(ref string) string {
				n, _ := strconv.Atoi(ref[1 : len(ref)-1])
				if k, ok := renum[n]; ok {
					return "[" + strconv.Itoa(k) + "]"
				}
				return ref
			})
		}
	}

	// The full run's header says that some rows come from other runs.
	if !slices.Contains(body, strings.Split(partialNote, "\n")[0]) {
		if i := slices.IndexFunc(body, func(l string) bool { return strings.HasPrefix(l, "Machine: ") }); i >= 0 {
			body = slices.Insert(body, i+1, strings.Split(partialNote, "\n")...)
		}
	}
	out := strings.Join(body, "\n")
	out = blankLines.ReplaceAllString(strings.TrimRight(out, "\n"), "\n\n") + "\n"
	if len(keptNotes) > 0 {
		out += "\nFailures:\n\n"
		for i, n := range keptNotes {
			out += fmt.Sprintf("%d. %s\n", i+1, strings.ReplaceAll(n, "\n", " "))
		}
	}
	return out + "\n", nil
}
