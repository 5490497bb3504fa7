package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// Reader connections stay open between queries: a burst of readersIdle
// reads at once closes none of them afterwards (database/sql keeps two by
// default, and would reopen the others for the next burst).
func TestReadersStayOpen(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "starling.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var txs []*sql.Tx
	for range readersIdle {
		tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		var one int
		if err := tx.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	for _, tx := range txs {
		tx.Rollback()
	}
	if st := s.r.Stats(); st.MaxIdleClosed != 0 || st.Idle != readersIdle {
		t.Errorf("after %d reads at once: %d idle, %d closed for the idle limit", readersIdle, st.Idle, st.MaxIdleClosed)
	}
}
