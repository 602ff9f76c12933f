package domain

import "errors"

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("record not found")

// ErrExists is returned by a create when the record already exists.
var ErrExists = errors.New("record exists")

// ErrNoChange is returned by an update function to leave the record unchanged.
var ErrNoChange = errors.New("no change")
