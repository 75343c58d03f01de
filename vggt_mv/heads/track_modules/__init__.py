"""Parts of the track head: correlation pyramid, update transformer, iterative tracker."""
