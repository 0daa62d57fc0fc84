module taskflow.test/goclient

go 1.22
