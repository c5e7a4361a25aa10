//go:build unix

package testenv

import (
	"regexp"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/internal/poll"
)

// TestMariaDBAndExporter checks the MariaDB and exporter harnesses on the
// real servers: a database made with CreateDatabase keeps rows across a stop
// and a start (same port, same data), the admin login works over TCP, the
// exporter reports mysql_up 1 with the server's version, 0 while it is
// stopped, and 1 again once it is back.
func TestMariaDBAndExporter(t *testing.T) {
	db := StartMariaDB(t)
	db.CreateDatabase(t, "mlflow")
	db.Exec(t, "mlflow", "CREATE TABLE fish (id INT PRIMARY KEY, name VARCHAR(40)); INSERT INTO fish VALUES (1, 'Salmo salar'), (2, 'Esox lucius')")
	if rows := db.Query(t, "mlflow", "SELECT name FROM fish ORDER BY id"); len(rows) != 2 || rows[0][0] != "Salmo salar" || rows[1][0] != "Esox lucius" {
		t.Fatalf("rows %q", rows)
	}
	if rows := db.Query(t, "", "SELECT CURRENT_USER(), @@version"); len(rows) != 1 || rows[0][0] != "admin@%" {
		t.Fatalf("logged in as %q, want admin@%%", rows)
	}

	e := StartMySQLdExporter(t, db)
	up := regexp.MustCompile(`(?m)^mysql_up (\d)$`)
	m := e.Scrape(t)
	if g := up.FindStringSubmatch(m); g == nil || g[1] != "1" {
		t.Fatalf("mysql_up %q, want 1", g)
	}
	if !regexp.MustCompile(`(?m)^mysql_version_info\{.*version="10\.11\.`).MatchString(m) {
		t.Errorf("no mysql_version_info of MariaDB 10.11 in the exporter's metrics")
	}

	db.Stop(t)
	poll.Until(t, 30*time.Second, 200*time.Millisecond, "mysql_up 0 with the server stopped", func() bool {
		g := up.FindStringSubmatch(e.Scrape(t))
		return g != nil && g[1] == "0"
	})
	db.Start(t)
	poll.Until(t, 30*time.Second, 200*time.Millisecond, "mysql_up 1 with the server back", func() bool {
		g := up.FindStringSubmatch(e.Scrape(t))
		return g != nil && g[1] == "1"
	})
	if rows := db.Query(t, "mlflow", "SELECT COUNT(*) FROM fish"); len(rows) != 1 || rows[0][0] != "2" {
		t.Fatalf("after a restart: %q rows, want 2", rows)
	}
}
