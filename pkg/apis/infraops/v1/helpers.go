package v1

// Common returns the fields every action's options share; the options kinds
// embed ActionOptions, so they all have it.
func (o *ActionOptions) Common() *ActionOptions { return o }
