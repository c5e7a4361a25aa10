module github.com/fish-classifier/fish-classifier

go 1.26.0

require golang.org/x/image v0.48.0 // indirect
