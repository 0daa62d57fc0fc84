INSERT INTO taskflow_schema_migrations (version, name) VALUES (%(version)s, %(name)s)
