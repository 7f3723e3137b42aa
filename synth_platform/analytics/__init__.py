"""Analytics on delivered data: SQL builders (bound parameters, portable across PostgreSQL, MySQL/MariaDB and
SQLite), result shaping into Markdown, plots, the Tinybird-to-database transfer and the query load test."""
