package main

import (
	"strings"
	"testing"
)

func TestUploadCases(t *testing.T) {
	cases, err := pick(suite(false), "upload-1m,upload-50m")
	if err != nil || len(cases) != 2 {
		t.Fatalf("pick: %v %+v", err, cases)
	}
	for _, c := range cases {
		if phaseOf(c) != uploads || c.scenario != "upload" || !strings.Contains(strings.Join(c.args, " "), "--scenario upload --size ") {
			t.Errorf("%+v", c)
		}
	}
	if a := accountsNeeded(cases); len(a) != 1 || a[0].prefix != "user" || a[0].k != 4 {
		t.Fatalf("accounts %+v", a)
	}
	if conf := starlingUpload(true); !strings.Contains(conf, "[modules.upload]\nmax_file_size = 104857600\n") || starlingUpload(false) != "" {
		t.Fatalf("Starling's upload configuration: %q", conf)
	}
	ok := &result{Uploads: 200, Downloads: 200, Verified: 200}
	bad := &result{Uploads: 200, Downloads: 200, Verified: 199}
	if uploadVerified(ok) != "yes, 200" || !strings.HasPrefix(uploadVerified(bad), "NO: 199 of 200") {
		t.Fatalf("%q %q", uploadVerified(ok), uploadVerified(bad))
	}
}
