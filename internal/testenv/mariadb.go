//go:build unix

package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Timeouts of the MariaDB harness: mariadb-install-db takes about a second, a
// start about two.
const (
	MariaDBInitTimeout  = 2 * time.Minute
	MariaDBStartTimeout = 60 * time.Second
	MariaDBStopTimeout  = 30 * time.Second
)

// The Debian packages (scripts/install-test-deps.sh) that the MariaDB and
// exporter harnesses run.
const (
	mariadbServer  = "/usr/sbin/mariadbd"
	mariadbInstall = "mariadb-install-db"
	mariadbClient  = "mariadb"
	mysqldExporter = "prometheus-mysqld-exporter"
)

// MariaDB is a real MariaDB server (Debian 12's mariadb-server, 10.11) with
// its own data directory in a temporary folder of the test's, listening on a
// free loopback port and on a Unix socket there: MLflow's backend store in the
// model-lifecycle tests. Stop and Start let a test take it away and bring it
// back (same port, same data).
type MariaDB struct {
	// Addr is "127.0.0.1:PORT"; Socket the Unix socket's path.
	Addr, Socket string
	// User and Password are the admin login: every privilege, with grant
	// option, from any host (TCP on loopback, or the socket).
	User, Password string
	// DataDir is the data directory; Log the file holding the server's output
	// (across restarts).
	DataDir, Log string

	dir  string
	args []string
	proc *process
}

// admin login of every MariaDB the harness starts.
const (
	mariadbAdmin    = "admin"
	mariadbAdminPwd = "testenv-admin-pw"
)

// StartMariaDB makes a fresh data directory (mariadb-install-db) and starts
// MariaDB on it, waits until it answers, creates the admin login, and stops it
// at cleanup, printing its log's tail when the test failed. The server runs
// as the test's user (as root too: --user=root), reads no option file of the
// machine's (--no-defaults), resolves no host names, and keeps InnoDB small
// (a 32 MB buffer pool, an 8 MB redo log). A picked port that something else
// took meanwhile makes it try new ones (three attempts); any other failure
// fails the test.
func StartMariaDB(t *testing.T) *MariaDB {
	t.Helper()
	RealServers(t, "starts the real MariaDB")
	for _, bin := range []string{mariadbServer, mariadbInstall, mariadbClient} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is missing: install the Debian package mariadb-server (scripts/install-test-deps.sh): %v", bin, err)
		}
	}
	dir := t.TempDir()
	db := &MariaDB{
		User: mariadbAdmin, Password: mariadbAdminPwd,
		Socket:  filepath.Join(dir, "mysqld.sock"),
		DataDir: filepath.Join(dir, "data"),
		Log:     filepath.Join(dir, "log"),
		dir:     dir,
	}
	// A Unix socket's path holds at most 107 bytes: a long temporary folder
	// (TMPDIR, a long test name) gets the socket a short folder of its own.
	if len(db.Socket) > 100 {
		short, err := os.MkdirTemp("", "mariadb")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(short) })
		db.Socket = filepath.Join(short, "sock")
	}
	common := []string{"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"}
	if os.Geteuid() == 0 {
		// mariadbd refuses to run as root unless told to.
		common = append(common, "--user=root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), MariaDBInitTimeout)
	defer cancel()
	began := time.Now()
	// --no-defaults must come first. The root accounts it makes
	// (root@localhost, root@127.0.0.1) have no password: the harness's own
	// login over the socket.
	install := exec.CommandContext(ctx, mariadbInstall, append([]string{"--no-defaults",
		"--datadir=" + db.DataDir, "--auth-root-authentication-method=normal", "--skip-test-db"}, common...)...)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	t.Logf("mariadb data directory made in %v", time.Since(began).Round(time.Millisecond))
	err := withPortRetry(func(int) error {
		db.Addr = FreeLoopbackAddr(t)
		db.args = append([]string{"--no-defaults",
			"--datadir=" + db.DataDir, "--socket=" + db.Socket,
			"--bind-address=127.0.0.1", "--port=" + portOf(db.Addr),
			"--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
			"--skip-name-resolve", "--skip-log-bin"}, common...)
		return db.start(t)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.rootExec(t, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'; GRANT ALL PRIVILEGES ON *.* TO '%[1]s'@'%%' WITH GRANT OPTION;",
		db.User, db.Password))
	cleanupServer(t, "mariadb", func() string { return db.Log }, func() error {
		if db.proc == nil {
			return nil
		}
		return db.proc.stop(MariaDBStopTimeout)
	})
	return db
}

// start runs mariadbd and waits until it answers a query (over its socket).
func (db *MariaDB) start(t testing.TB) error {
	began := time.Now()
	p, err := startProcess("mariadb", mariadbServer, db.args, nil, db.dir, db.Log)
	if err != nil {
		return err
	}
	if err := p.waitUntil(MariaDBStartTimeout, func() bool {
		_, err := db.run(context.Background(), "root", "", "", "SELECT 1")
		return err == nil
	}); err != nil {
		return err
	}
	db.proc = p
	t.Logf("mariadb ready in %v (%s, socket %s)", time.Since(began).Round(time.Millisecond), db.Addr, db.Socket)
	return nil
}

// Stop shuts the server down (SIGTERM: a clean shutdown) and waits until it
// has exited; a test takes the database away with it (to see an alert fire).
func (db *MariaDB) Stop(t testing.TB) {
	t.Helper()
	if db.proc == nil {
		return
	}
	if err := db.proc.stop(MariaDBStopTimeout); err != nil {
		t.Fatal(err)
	}
	db.proc = nil
}

// Start starts a stopped server again on the same port and data.
func (db *MariaDB) Start(t testing.TB) {
	t.Helper()
	if db.proc != nil {
		t.Fatal("mariadb: Start while it runs")
	}
	if err := db.start(t); err != nil {
		t.Fatal(err)
	}
}

var sqlName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// CreateDatabase creates the database name (letters, digits, underscores) in
// utf8mb4; a failure fails the test.
func (db *MariaDB) CreateDatabase(t testing.TB, name string) {
	t.Helper()
	if !sqlName.MatchString(name) {
		t.Fatalf("mariadb: database name %q: letters, digits and underscores only", name)
	}
	db.Exec(t, "", "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
}

// DSN is the SQLAlchemy URL with which MLflow (--backend-store-uri) reaches
// the database name over TCP as the admin:
// "mysql+pymysql://admin:PASSWORD@127.0.0.1:PORT/NAME".
func (db *MariaDB) DSN(name string) string {
	return fmt.Sprintf("mysql+pymysql://%s:%s@%s/%s", db.User, db.Password, db.Addr, name)
}

// Exec runs SQL statements (separated by semicolons) in database (""
// for none) as the admin, over TCP with the mariadb client; a failure fails
// the test.
func (db *MariaDB) Exec(t testing.TB, database, sql string) {
	t.Helper()
	if _, err := db.run(context.Background(), db.User, db.Password, database, sql); err != nil {
		t.Fatal(err)
	}
}

// Query runs one query in database as the admin and returns its rows, each
// as its columns' text (NULL as "NULL"), without the header.
func (db *MariaDB) Query(t testing.TB, database, sql string) [][]string {
	t.Helper()
	out, err := db.run(context.Background(), db.User, db.Password, database, sql)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows
}

// rootExec runs SQL as root over the socket (no password), the harness's own
// login.
func (db *MariaDB) rootExec(t testing.TB, sql string) {
	t.Helper()
	if _, err := db.run(context.Background(), "root", "", "", sql); err != nil {
		t.Fatal(err)
	}
}

// run is the mariadb client in batch mode (tab-separated rows, no header):
// over the socket for root, over TCP for anyone else. The password goes in
// the environment (MYSQL_PWD), not the command line.
func (db *MariaDB) run(ctx context.Context, user, password, database, sql string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	args := []string{"--no-defaults", "--batch", "--skip-column-names", "--user=" + user}
	if user == "root" {
		args = append(args, "--socket="+db.Socket)
	} else {
		args = append(args, "--protocol=TCP", "--host=127.0.0.1", "--port="+portOf(db.Addr))
	}
	if database != "" {
		args = append(args, "--database="+database)
	}
	cmd := exec.CommandContext(ctx, mariadbClient, append(args, "--execute="+sql)...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+password)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("mariadb %s: %v: %s", sql, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Exporter is a real prometheus-mysqld-exporter (Debian 12's, 0.14) watching a
// MariaDB as a login of its own, listening on a free loopback port.
type Exporter struct {
	// Addr is "127.0.0.1:PORT", the target of a Prometheus scrape (metrics
	// under /metrics).
	Addr string
	// Log is the file holding its output.
	Log string
}

// MetricsURL is the full URL of its metrics.
func (e *Exporter) MetricsURL() string { return "http://" + e.Addr + "/metrics" }

// Scrape reads its metrics once; a failure fails the test.
func (e *Exporter) Scrape(t testing.TB) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(e.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", e.MetricsURL(), resp.Status, err)
	}
	return string(b)
}

// exporter's login, with the privileges the exporter's documentation asks for
// (PROCESS, REPLICATION CLIENT, which MariaDB names BINLOG MONITOR, and
// SELECT) and at most three connections.
const (
	exporterUser = "exporter"
	exporterPwd  = "testenv-exporter-pw"
)

// StartMySQLdExporter creates the exporter's login in db, starts
// prometheus-mysqld-exporter against db over TCP (its credentials in a
// .my.cnf file of the test's), waits until its metrics say mysql_up 1, and
// stops it at cleanup, printing its log's tail when the test failed.
func StartMySQLdExporter(t *testing.T, db *MariaDB) *Exporter {
	t.Helper()
	RealServers(t, "starts the real prometheus-mysqld-exporter")
	bin, err := exec.LookPath(mysqldExporter)
	if err != nil {
		t.Fatalf("%s is missing: install the Debian package (scripts/install-test-deps.sh): %v", mysqldExporter, err)
	}
	db.Exec(t, "", fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s' WITH MAX_USER_CONNECTIONS 3; "+
		"GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO '%[1]s'@'%%';", exporterUser, exporterPwd))
	dir := t.TempDir()
	cnf := filepath.Join(dir, "my.cnf")
	if err := os.WriteFile(cnf, fmt.Appendf(nil, "[client]\nuser=%s\npassword=%s\nhost=127.0.0.1\nport=%s\n",
		exporterUser, exporterPwd, portOf(db.Addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &Exporter{Log: filepath.Join(dir, "log")}
	var p *process
	err = withPortRetry(func(int) error {
		e.Addr = FreeLoopbackAddr(t)
		began := time.Now()
		var err error
		p, err = startProcess("mysqld-exporter", bin, []string{"--config.my-cnf=" + cnf, "--web.listen-address=" + e.Addr}, nil, dir, e.Log)
		if err != nil {
			return err
		}
		client := &http.Client{Timeout: 5 * time.Second}
		if err := p.waitUntil(MariaDBStartTimeout, func() bool {
			resp, err := client.Get(e.MetricsURL())
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK && regexp.MustCompile(`(?m)^mysql_up 1$`).Match(b)
		}); err != nil {
			return err
		}
		t.Logf("mysqld-exporter ready in %v (%s)", time.Since(began).Round(time.Millisecond), e.MetricsURL())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cleanupServer(t, "mysqld-exporter", func() string { return e.Log }, func() error { return p.stop(10 * time.Second) })
	return e
}
