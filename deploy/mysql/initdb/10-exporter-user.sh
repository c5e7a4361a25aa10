#!/bin/sh
# Run by the MariaDB image's entrypoint on the first start only (an empty
# mysql_data volume), after it created the root account and the mlflow
# database: the account prometheus-mysqld-exporter (service mysqld-exporter)
# scrapes with. It may read the server's status, variables, process list and
# replication state, nothing else, over at most three connections.
# MYSQLD_EXPORTER_PASSWORD is the same variable the exporter reads.
set -eu

: "${MYSQLD_EXPORTER_PASSWORD:?set MYSQLD_EXPORTER_PASSWORD (docker-compose.yml gives it a default)}"
# The password as an SQL string literal: backslashes and quotes escaped.
password=$(printf '%s' "$MYSQLD_EXPORTER_PASSWORD" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g")

mariadb --protocol=socket --user=root --password="$MARIADB_ROOT_PASSWORD" <<SQL
CREATE USER IF NOT EXISTS 'exporter'@'%' IDENTIFIED BY '$password' WITH MAX_USER_CONNECTIONS 3;
GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SELECT ON *.* TO 'exporter'@'%';
SQL
